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
        "label_smoothing = 0.0  # one-sided: real faces' target is 1 - this (0.1 is usual)\n"
        "discriminator_norm = \"batch\"  # or \"spectral\": spectral normalisation instead of batch norm\n"
        "flip_faces = False  # mirror each real face left-right with probability 1/2\n"
        "diff_augment = [\"color\", \"translation\", \"cutout\"]  # DiffAugment of every face the discriminator sees ([]: off)\n"
        "image_size = 64  # 64×64 faces; any power of two of at least 8 (the networks gain or lose layers)\n"
        "z_dim = 100\n"
        "generator_width = 64  # generator channels 512-256-128-64 at 64\n"
        "discriminator_width = 64  # discriminator channels 64-128-256-512 at 64\n"
        "kernel_size = 5\n"
        "batchnorm_momentum = 0.9\n"
        "ema_decay = 0.999  # grids and faces from a moving average of the generator's weights (0: off, the plain recipe)\n"
        "ema_statistics_batches = 10  # the average's batch-norm statistics from this many batches of its faces (0: copied)\n"
        "precision = \"float32\"  # or \"mixed_bfloat16\", \"mixed_float16\"\n"
        "strategy = \"default\"  # one device; \"mirrored\": all GPUs here; \"multi_worker\": several machines (TF_CONFIG)\n"
        "jit_compile = None  # XLA: None turns it on for GPUs, off on CPUs\n"
        "steps_per_execution = 1  # training steps per call into TensorFlow\n"
        "resident_data = None  # keep the faces on the training device; None: on for GPUs\n"
        "sample_every = 100  # grids imgs/examples-1.png, -101.png, -201.png, ...\n"
        "checkpoint_every = 500\n"
        "keep_checkpoints = 3\n"
        "checkpoint_dir = \"my_net\"\n"
        "sample_dir = \"imgs\"\n"
        "seed = 0\n"
        "fresh = False  # True: archive the run in checkpoint_dir and sample_dir, start from step 0\n"
        "metrics_every = 0  # score the faces every this many steps (0: off); see metrics.py\n"
        "metric_samples = 2048  # generated faces scored against as many training faces\n"
        "metrics = [\"swd\"]  # any of \"swd\", \"fid\", \"kid\" (FID/KID: pip install -r requirements-metrics.txt)\n"
        "best_metric = \"swd\"  # the network scoring lowest is kept in checkpoint_dir/best-<metric>/\n"
        "evaluation_samples = 1000  # score the final network on this many faces with `metrics` (0: skip)",
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
    new_markdown_cell("Losses, and the quality metrics when `metrics_every` is on (lower is better):"),
    new_code_cell("training.plot_losses(config.checkpoint_dir)\nplt.show()"),
    new_markdown_cell("The final network's scores (lower is better; `python metrics.py --checkpoint my_net ...` "
                      "scores any run headless):"),
    new_code_cell(
        "if evaluation_samples:\n"
        "    import metrics as quality\n"
        "    scores = quality.score_checkpoint(config.checkpoint_dir, faces.images, evaluation_samples, config.metrics,\n"
        "                                      cache_dir=config.cache_dir, seed=config.seed)\n"
        "    print(quality.report(scores))"),
]

INTERPOLATE = [
    new_markdown_cell(
        "# Morph one generated face into another\n\n"
        "Restores the network trained by `gan_new.ipynb` from `checkpoint_dir` (rebuilt from its `config.json`) "
        "and writes a GIF walking the latent path between faces of the training grid `imgs/examples-*.png`.\n\n"
        "Waypoints: `[row, column]` of that 10×10 grid, `\"column C\"` or `\"row R\"` (the whole line), an integer "
        "seed, or `\"random\"`. Headless: `papermill interpolate.ipynb out.ipynb -y \"waypoints: [[0, 3], [9, 3]]\"`."),
    new_code_cell(
        "# parameters\n"
        "checkpoint_dir = \"my_net\"\n"
        "checkpoint_step = None  # None: the newest checkpoint; or a step that has one\n"
        "waypoints = [[0, 0], [9, 0]]  # face A and face B: top and bottom of the grid's first column\n"
        "closed = False  # True: return to the first waypoint, for a seamless loop\n"
        "frames = 10\n"
        "kind = \"slerp\"  # or \"linear\"\n"
        "fps = 10\n"
        "mode = \"independent\"  # or \"pad\": the seed's way, padding to the training batch with random vectors\n"
        "batch_size = 100  # the batch that \"pad\" fills (the seed trained with 100)\n"
        "upscale = 2  # nearest-neighbour enlargement of the frames for viewing\n"
        "gif_path = \"testimgs/test.gif\"\n"
        "strip_path = \"testimgs/examples.png\"\n"
        "compare_modes = True  # show the same path in both modes, one above the other\n"
        "seed = 0  # for \"random\" waypoints and pad mode's random vectors\n"
        "use_average = True  # draw with the moving average of the generator's weights (False: the trained one)",
        metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "from IPython.display import Image, display\n\n"
        "import celeba_utils\n"
        "import latent\n"
        "import training\n\n"
        "gan, config = training.load_gan(checkpoint_dir, checkpoint_step)\n"
        "print(f\"restored {checkpoint_dir} at step {int(gan.step.numpy())}\")"),
    new_code_cell(
        "images = latent.interpolate(gan, waypoints, frames, kind, closed, fps, mode, upscale, gif_path, strip_path,\n"
        "                            batch_size, seed, use_average)\n"
        "print(f\"{len(images)} frames of {images.shape[1]}×{images.shape[2]}: {gif_path} and {strip_path}\")\n"
        "display(Image(filename=gif_path))\n"
        "display(Image(filename=strip_path))"),
    new_markdown_cell(
        "The same path in both generation modes: top, each face from its own vector (batch norm's moving "
        "statistics); bottom, the seed's way (padded to a batch of 100 and run with that batch's statistics)."),
    new_code_cell(
        "if compare_modes:\n"
        "    z = latent.latent_path(latent.waypoint_vectors(waypoints, gan.grid_latents.numpy(), seed), frames, kind,\n"
        "                           closed)\n"
        "    generator = gan.sampling_generator if use_average else gan.generator\n"
        "    both = [latent.generate_frames(generator, z, each, batch_size, seed) for each in latent.MODES]\n"
        "    plt.figure(figsize=(min(frames, 10) * 1.2, 2.8))\n"
        "    plt.imshow(celeba_utils.image_grid(np.concatenate(both), rows=2, columns=frames))\n"
        "    plt.yticks([32, 96], list(latent.MODES))\n"
        "    plt.xticks([])\n"
        "    plt.show()"),
]


def main():
    for name, cells in (("gan_new.ipynb", GAN_NEW), ("interpolate.ipynb", INTERPOLATE)):
        for number, cell in enumerate(cells):  # stable ids: regenerating changes only what was edited
            cell["id"] = f"cell-{number}"
        notebook = new_notebook(cells=cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        nbformat.write(notebook, name)


if __name__ == "__main__":
    main()
