"""Write gan_new.ipynb and interpolate.ipynb from the cell sources below (run after editing them).

The notebooks are committed without outputs; their logic lives in the .py modules, where it is tested.
"""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

GAN_NEW = [
    new_markdown_cell(
        "# Train a 64×64 face DCGAN on CelebA\n\n"
        "Run all cells. Stop at any time with the stop button: a checkpoint is written to `checkpoint_dir` "
        "(`my_net/`). Run again to resume where you stopped. Sample grids go to `sample_dir` (`imgs/`).\n\n"
        "Headless: `papermill gan_new.ipynb out.ipynb -p image_path /data/img_align_celeba -p steps 20000`."),
    new_code_cell(
        "# parameters: every setting with its default (dcgan.Config documents each)\n"
        "image_path = \"img_align_celeba\"  # CelebA's folder of aligned faces, or img_align_celeba.zip\n"
        "crop_size = 108  # centre crop of the aligned 178×218 face before resizing to 64×64\n"
        "partition = None  # \"train\", \"validation\", \"test\" or None for all faces\n"
        "attributes = []  # e.g. [\"Smiling\"] or [\"-Eyeglasses\"]: only faces with / without these\n"
        "cache_dir = None  # where decoded faces are cached (None: ~/.cache/dcgan-faces)\n"
        "steps = 20000  # train until this step (a resumed run continues toward it)\n"
        "batch_size = 100\n"
        "generator_learning_rate = 2e-4\n"
        "discriminator_learning_rate = 2e-4\n"
        "beta_1 = 0.5\n"
        "z_dim = 100\n"
        "generator_width = 64  # generator channels 512-256-128-64 at 64\n"
        "discriminator_width = 64  # discriminator channels 64-128-256-512 at 64\n"
        "kernel_size = 5\n"
        "batchnorm_momentum = 0.9\n"
        "precision = \"float32\"  # or \"mixed_bfloat16\", \"mixed_float16\"\n"
        "sample_every = 100  # grids imgs/examples-1.png, -101.png, -201.png, ...\n"
        "checkpoint_every = 500\n"
        "keep_checkpoints = 3\n"
        "checkpoint_dir = \"my_net\"\n"
        "sample_dir = \"imgs\"\n"
        "seed = 0\n"
        "fresh = False  # True: archive the run in checkpoint_dir and sample_dir, start from step 0",
        metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import matplotlib.pyplot as plt\n\n"
        "import celeba_utils\n"
        "import dcgan\n"
        "import training\n\n"
        "config = dcgan.Config.from_dict(globals())  # the parameters above, checked\n"
        "faces = training.load_training_faces(config)\n"
        "print(f\"{len(faces.images)} faces, {len(faces.skipped)} unreadable files skipped\")"),
    new_markdown_cell("Real faces as the pipeline delivers them (one batch):"),
    new_code_cell(
        "batch = next(iter(celeba_utils.make_dataset(faces.images, config.batch_size, seed=config.seed)))\n"
        "plt.figure(figsize=(7, 7))\n"
        "plt.imshow(celeba_utils.image_grid(batch[:100].numpy()))\n"
        "plt.axis(\"off\")\n"
        "plt.show()"),
    new_markdown_cell("Train (the newest sample grid is shown below the progress bar as it is written):"),
    new_code_cell("run = training.train(config, faces=faces)"),
    new_code_cell("training.plot_losses(config.checkpoint_dir)\nplt.show()"),
]


def main():
    for name, cells in (("gan_new.ipynb", GAN_NEW),):
        notebook = new_notebook(cells=cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        nbformat.write(notebook, name)


if __name__ == "__main__":
    main()
