"""How much the number of training faces matters, and whether DiffAugment (a method for small data) still helps
with more of them: the defaults, and the same recipe without DiffAugment, each trained for the same images seen on
the 5,100-face sample and on the largest set here (the sample and the 10,000 half-resolution faces, less the
held-out faces), from the same seed; each scored against 2,048 faces that no run trained on and against 2,048 of
its own training faces.

    python -m experiments.data_size --celeba path/to/celeba --out docs/ablation/data-size

CELEBA holds img_align_celeba/ (the sample) and img_align_celeba_89x109/. The held-out faces are 2,048 of the
half-resolution faces whose names are not in the sample, fixed by a seed; the large set is every other distinct
face of both folders (a face in both is taken at full resolution). Runs train into RUNS/<data>/<recipe>/ (default
~/dcgan-data-size: networks trained on CelebA stay out of the project) and resume when stopped. Each score goes
to OUT/results.json as it is measured, with what it was trained on, how many faces, the reference it was scored
against, the generator and how it draws; OUT/<data>-<recipe>.png shows 64 of the run's faces.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import os
from typing import List, Optional, Sequence


import celeba_utils
from facegan.images import atomic_write, image_grid
from experiments import records
from experiments.faces import HELD_OUT, split_faces
from experiments.recipes import overrides_of, run_config
from facegan import runs, training
from facegan.drawing import draw_faces
from facegan.settings_text import add_arguments
from facegan.metrics import maths, registry

RECIPES = {  # the ablation's names for each recipe (experiments.recipes.SETTINGS)
    "defaults": "diff_augment_translation_cutout+kernel_4+reuse_fakes+auto_precision",
    "without_diff_augment": "kernel_4+reuse_fakes+auto_precision",
}
DATA = ("small", "large")
DESCRIBED = {"small": "CelebA img_align_celeba (the sample)",
             "large": "CelebA img_align_celeba + img_align_celeba_89x109, less the held-out faces",
             "held_out": "faces of CelebA img_align_celeba_89x109 in neither training set (2,048 by default)"}
GENERATOR = records.DEFAULT_GENERATOR  # the moving average with its own batch-norm statistics: how faces are drawn
DEFAULT_RUNS = os.path.join(os.path.expanduser("~"), "dcgan-data-size")


def find(results: Sequence[dict], data: str, recipe: str, reference: str) -> Optional[dict]:
    return next((record for record in results if (record.get("data"), record.get("recipe"), record.get("reference"))
                 == (data, recipe, reference)), None)


def measure(celeba: str, out_dir: str, runs_dir: str = DEFAULT_RUNS, budget: int = 96_000,
            recipes: Sequence[str] = tuple(RECIPES), data: Sequence[str] = DATA, samples: int = records.SAMPLES,
            metric_names: Sequence[str] = ("fid", "kid", "swd"), held_out: int = HELD_OUT,
            cache_dir: Optional[str] = None, show: bool = True, **network) -> List[dict]:
    """Train (or resume) and score each run; returns every record of OUT/results.json."""
    unknown = [name for name in recipes if name not in RECIPES] + [name for name in data if name not in DATA]
    if unknown:
        raise ValueError(f"Unknown recipes or data {unknown}: choose among {', '.join(RECIPES)} and "
                         f"{', '.join(DATA)}")
    os.makedirs(out_dir, exist_ok=True)
    folders = split_faces(celeba, os.path.join(runs_dir, "faces"), held_out)
    held_out_faces = celeba_utils.load_faces(folders["held_out"], cache_dir=cache_dir, progress=show).images
    for data_name in data:
        faces = celeba_utils.load_faces(folders[data_name], cache_dir=cache_dir, progress=show)
        for recipe in recipes:
            results = records.read_results(out_dir)
            if all(find(results, data_name, recipe, reference) for reference in ("held_out", "training")):
                continue
            config = run_config(RECIPES[recipe], folders[data_name], budget,
                                         os.path.join(runs_dir, data_name), cache_dir=cache_dir, **network)
            run = training.train(config, show=show, faces=faces)
            if run.stopped:
                print("stopped: run the same command again to resume")
                return records.read_results(out_dir)
            gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
            generator = records.pick_generator(gan, GENERATOR)
            generated = draw_faces(generator, seeds=range(records.JUDGE_SEED, records.JUDGE_SEED + samples))
            steps = int(gan.step.numpy())
            for reference, real in (("held_out", held_out_faces), ("training", faces.images)):
                if find(records.read_results(out_dir), data_name, recipe, reference):
                    continue
                sample = maths.real_sample(real, samples, records.JUDGE_SEED)
                scores = registry.evaluate(generated, sample, metric_names, cache_dir, records.JUDGE_SEED)
                records.record_scores(
                    out_dir, scores, image_grid(generated[:64], 8, 8), show,
                    setting=f"{data_name}-{recipe}",
                    **records.run_fields(config, overrides_of(RECIPES[recipe]), GENERATOR, steps),
                    data=data_name, recipe=recipe, training_faces=len(faces.images),
                    training_folders=DESCRIBED[data_name], reference=reference, reference_faces=len(sample),
                    reference_folders=DESCRIBED["held_out"] if reference == "held_out" else DESCRIBED[data_name])
    return records.read_results(out_dir)


def table(results: Sequence[dict]) -> str:
    """The scores as a Markdown table: one row per run, FID and KID against both references."""
    lines = ["| trained on | faces | recipe | FID, held out | FID, training | KID ×10³, held out | KID ×10³, training "
             "| SWD ×10³, held out |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for data_name in DATA:
        for recipe in RECIPES:
            held, own = find(results, data_name, recipe, "held_out"), find(results, data_name, recipe, "training")
            if not (held or own):
                continue
            cell = lambda record, key, scale=1: f"{scale * record[key]:.1f}" if record and key in record else ""  # noqa: E731
            faces = (held or own)["training_faces"]
            lines.append(f"| {data_name} | {faces:,} | {recipe.replace('_', ' ')} | {cell(held, 'fid')} | "
                         f"{cell(own, 'fid')} | {cell(held, 'kid', 1e3)} | {cell(own, 'kid', 1e3)} | "
                         f"{cell(held, 'swd')} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celeba", required=True, help="the folder holding img_align_celeba/ and "
                        "img_align_celeba_89x109/")
    parser.add_argument("--out", required=True, help="where results.json and the grids go (docs/ablation/data-size "
                        "for the published ones)")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="where the runs train (default ~/dcgan-data-size)")
    parser.add_argument("--budget", type=int, default=96_000, help="images seen by each run (default 96,000)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"among {', '.join(RECIPES)}")
    parser.add_argument("--data", default=",".join(DATA), help=f"among {', '.join(DATA)}")
    add_arguments(parser, ("metric_samples", "cache_dir"), flags={"metric_samples": "samples"})
    parser.set_defaults(metric_samples=records.SAMPLES)
    arguments = parser.parse_args()
    results = measure(arguments.celeba, arguments.out, runs_dir=arguments.runs, budget=arguments.budget,
                      recipes=arguments.recipes.split(","), data=arguments.data.split(","),
                      samples=arguments.metric_samples, cache_dir=arguments.cache_dir)
    with atomic_write(os.path.join(arguments.out, "table.md"), "w") as handle:
        handle.write(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
