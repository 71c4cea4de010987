"""An hour of training and more, measured: the defaults trained the way README command 1 trains them, toward
20,000 steps from seed 0 on the CelebA sample, a checkpoint every 500 steps all kept, each checkpoint scored as it
lands.

    python -m experiments.long_run --celeba ../shared/celeba --runs ~/dcgan-long-run --out docs/long-run --part train
    python -m experiments.long_run --celeba ../shared/celeba --runs ~/dcgan-long-run --out docs/long-run --part score
    python -m experiments.long_run --celeba ../shared/celeba --runs ~/dcgan-long-run --out docs/long-run --part coverage
    python -m experiments.long_run --celeba ../shared/celeba --runs ~/dcgan-long-run --out docs/long-run --part faces

"train" trains (or resumes) Config's defaults on CELEBA/img_align_celeba into RUNS/my_net and RUNS/imgs: the same
run as `papermill gan_new.ipynb out.ipynb -p image_path CELEBA/img_align_celeba -p steps 20000 -p keep_checkpoints
40` started in RUNS, so either resumes the other. "score" scores every kept checkpoint not yet in OUT/results.json,
and can run beside training (--wait: until the last step is scored): the moving average (how faces are drawn) every
--score-every steps, the trained generator every --trained-every steps; 2,048 faces (seeds 0 … 2,047) against 2,048
training faces (FID, KID, SWD, precision and recall) and against the 2,048 held-out faces no run trained on
(experiments/faces.py: FID, KID, precision and recall). Two floors, real faces scored as a generator's are, are
recorded once: the held-out faces, and the training faces outside the judge's sample of them. With the attribute
classifier in RUNS/my_net/attributes (python directions.py --checkpoint RUNS/my_net --data …), each generator scored
also gets its attribute coverage against the training faces (facegan/metrics/coverage.py) in OUT/coverage.json.
Each record names the step, images seen, the seconds of training at that step (wall time from losses.csv, and steps
× the median step time, which a busy machine moves less), the CPU, the arithmetic, the data and the seed.
OUT/table.md and OUT/curve.png show FID against images and hours; the networks stay in RUNS (trained on CelebA, they
stay out of the project).
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import os
import time
from typing import List, Optional, Sequence

import numpy as np

import celeba_utils
from experiments import records
from experiments.faces import HELD_OUT, split_faces
from facegan.config import Config
from facegan.images import atomic_write
from facegan.settings_text import add_arguments

STEPS = 20_000
CHECKPOINT_EVERY = 500
SCORE_EVERY = 1_000  # the checkpoints scored: a point costs minutes of Inception on a CPU (--score-every 500: all)
TRAINED_EVERY = 2_000  # the trained generator beside the average at these steps
GENERATOR = records.DEFAULT_GENERATOR
DEFAULT_RUNS = os.path.join(os.path.expanduser("~"), "dcgan-long-run")
REFERENCES = ("training", "held_out")


def run_config(celeba: str, runs_dir: str, steps: int = STEPS, cache_dir: Optional[str] = None,
               checkpoint_every: int = CHECKPOINT_EVERY, **settings) -> Config:
    """README command 1's settings: the defaults on the sample, all checkpoints kept, the run's folders in RUNS
    (`settings` change others: the tests' tiny networks)."""
    return Config(image_path=os.path.join(celeba, "img_align_celeba"), steps=steps, cache_dir=cache_dir,
                  checkpoint_every=checkpoint_every, keep_checkpoints=-(-steps // checkpoint_every),
                  checkpoint_dir=os.path.join(runs_dir, "my_net"), sample_dir=os.path.join(runs_dir, "imgs"),
                  **settings)


def seconds_at(losses: Sequence[dict], step: int, batch_size: int) -> dict:
    """The training time at a step: the wall time losses.csv logged there, and steps × the median step time."""
    rows = [row for row in losses if row["step"] <= step]
    return dict(wall_seconds=round(rows[-1]["seconds"], 1) if rows else None,
                train_seconds=records.training_seconds(rows, step, batch_size))


def find(results: Sequence[dict], step: int, generator: str, reference: str) -> Optional[dict]:
    return next((record for record in results if (record["step"], record["generator"], record["reference"])
                 == (step, generator, reference)), None)


def coverage_file(out_dir: str) -> str:
    return os.path.join(out_dir, "coverage.json")


def measure_coverage(config: Config, step: int, generator: str, faces, real, classifier, names, out_dir: str,
                     show: bool = True, judge: str = "attributes"):
    """The attribute coverage of a step's generator (the average, or the trained one) against the training faces,
    saved in OUT/coverage.json."""
    from facegan import devices
    from facegan.metrics import coverage

    rows = coverage.attribute_coverage(classifier, names, faces, real)
    worst = coverage.worst_canonical(rows)
    saved = records.read_json(coverage_file(out_dir), [])
    saved.append(dict(step=step, images_seen=step * config.training.batch_size, generator=generator,
                      faces=len(faces), real_faces=len(real), worst_canonical=list(worst), attributes=rows,
                      classifier=judge, data=config.data.image_path, seed=config.training.seed,
                      arithmetic=devices.resolve_precision(config.networks.precision)[0], **records.provenance()))
    records.write_json(coverage_file(out_dir), saved)
    if show:
        print(f"step {step:6d} {generator} coverage: Male {rows['Male']['generated']:.3f} generated against "
              f"{rows['Male']['real']:.3f} real; the worst canonical attribute {worst[0]} ({worst[1]:.0%} off)",
              flush=True)


def score_step(config: Config, step: int, generators: Sequence[str], references: dict, out_dir: str,
               show: bool = True, classifier=None, samples: int = records.SAMPLES):
    """Score one checkpoint's generators against each reference given ("training", "held_out"), each record saved
    as soon as it is measured."""
    from facegan import devices, runs
    from facegan.drawing import draw_faces
    from facegan.metrics import maths, registry

    gan, _ = runs.load_gan(config.outputs.checkpoint_dir, step)
    losses = runs.read_losses(config.outputs.checkpoint_dir)
    covered = {(record["step"], record["generator"]) for record in records.read_json(coverage_file(out_dir), [])}
    for generator in generators:
        wanted = [name for name in REFERENCES if name in references
                  and not find(records.read_results(out_dir), step, generator, name)]
        needs_coverage = classifier is not None and (step, generator) not in covered
        if not (wanted or needs_coverage):
            continue
        faces = draw_faces(records.pick_generator(gan, generator),
                           seeds=range(records.JUDGE_SEED, records.JUDGE_SEED + samples))
        if needs_coverage:
            measure_coverage(config, step, generator, faces, references["training"], *classifier, out_dir, show)
        for reference in wanted:
            metrics = ("fid", "kid", "swd", "pr") if reference == "training" else ("fid", "kid", "pr")
            sample = maths.real_sample(references[reference], samples, records.JUDGE_SEED)
            scores = registry.evaluate(faces, sample, metrics, config.data.cache_dir, records.JUDGE_SEED)
            record = dict(step=step, images_seen=step * config.training.batch_size, generator=generator,
                          drawing_mode=records.drawing_mode_text(generator, step * config.training.batch_size),
                          reference=reference,
                          **{name: round(float(value), 4) for name, value in scores.items()},
                          **seconds_at(losses, step, config.training.batch_size),
                          arithmetic=devices.resolve_precision(config.networks.precision)[0],
                          data=config.data.image_path, seed=config.training.seed, **records.provenance())
            records.write_results(out_dir, records.read_results(out_dir) + [record])
            if show:
                print(f"step {step:6d} {generator:20s} vs {reference:9s} FID {record['fid']:7.2f}  "
                      f"precision {record['precision']:.3f}  recall {record['recall']:.3f}", flush=True)


FLOOR = "held-out real faces"  # the floor: real faces against the training faces, as a generator's are scored
FULL_FLOOR = "other training faces"  # the floor at full resolution: training faces outside the judge's sample
FLOORS = {FLOOR: "none: CelebA faces no run trained on, half resolution (experiments/faces.py)",
          FULL_FLOOR: "none: training faces outside the judge's sample of them, full resolution"}


def floor_faces(references: dict, samples: int = records.SAMPLES) -> dict:
    """Real faces scored as a generator's are, by floor name: the held-out faces (never trained on, but softer than
    the training faces) and the training faces outside the judge's sample of them (full resolution: what a generator
    drawing new faces of the training faces' kind would score; left out when the sample takes every face)."""
    from facegan.metrics import maths

    floors = {FLOOR: maths.real_sample(references["held_out"], samples, records.JUDGE_SEED)}
    training = references["training"]
    rest = np.setdiff1d(np.arange(len(training)), maths.sample_indices(len(training), samples, records.JUDGE_SEED))
    if len(rest):
        floors[FULL_FLOOR] = maths.real_sample(training[rest], samples, records.JUDGE_SEED)
    return floors


def score_floor(config: Config, references: dict, out_dir: str, samples: int = records.SAMPLES):
    """The best a generator can score here: real faces against the judge's sample of the training faces, by the same
    judge (FID, KID, precision and recall), each floor recorded once as a "generator" of FLOORS at step 0."""
    from facegan.metrics import maths, registry

    sample = maths.real_sample(references["training"], samples, records.JUDGE_SEED)
    for name, faces in floor_faces(references, samples).items():
        if any(record["generator"] == name for record in records.read_results(out_dir)):
            continue
        scores = registry.evaluate(faces, sample, ("fid", "kid", "pr"), config.data.cache_dir, records.JUDGE_SEED)
        record = dict(step=0, images_seen=0, generator=name, reference="training", drawing_mode=FLOORS[name],
                      faces=len(faces), **{key: round(float(value), 4) for key, value in scores.items()},
                      data=config.data.image_path, seed=records.JUDGE_SEED, **records.provenance())
        records.write_results(out_dir, records.read_results(out_dir) + [record])


def scored_config(celeba: str, runs_dir: str, steps: int = STEPS, cache_dir: Optional[str] = None) -> Config:
    """The run's own settings (its batch size …) from its config.json, in RUNS's folders and CELEBA's faces."""
    from facegan import runs

    config = run_config(celeba, runs_dir, steps, cache_dir)
    saved = runs.read_config(config.outputs.checkpoint_dir)
    if saved is None:
        return config
    return saved.replace(checkpoint_dir=config.outputs.checkpoint_dir, sample_dir=config.outputs.sample_dir,
                         image_path=config.data.image_path, cache_dir=cache_dir)


def load_references(config: Config, celeba: str, runs_dir: str, names: Sequence[str],
                    held_out: int = HELD_OUT) -> dict:
    """The face sets a run is measured against, by name (celeba_utils.Faces: images and file names): "training",
    the run's own faces, and experiments/faces.py's "held_out" and "small_at_half" (made in RUNS/faces)."""
    folders = split_faces(celeba, os.path.join(runs_dir, "faces"), held_out) if set(names) - {"training"} else {}
    return {name: celeba_utils.load_faces(config.data.image_path if name == "training" else folders[name],
                                          cache_dir=config.data.cache_dir, progress=False) for name in names}


def cover(celeba: str, runs_dir: str, out_dir: str, cache_dir: Optional[str] = None, steps: int = STEPS,
          show: bool = True, samples: int = records.SAMPLES, classifier_dir: Optional[str] = None,
          generators: Sequence[str] = (GENERATOR, "trained")) -> List[dict]:
    """The attribute coverage alone (no Inception network: seconds a point) of every kept checkpoint not yet
    covered, for each of `generators` (records.GENERATORS: by default the average and the trained generator),
    against the training faces, by the classifier in classifier_dir (default: the run's attributes/); returns
    OUT/coverage.json."""
    from facegan import runs
    from facegan.drawing import draw_faces

    config = scored_config(celeba, runs_dir, steps, cache_dir)
    classifier = _classifier(config, classifier_dir)
    if classifier is None:
        folder = classifier_dir or os.path.join(config.outputs.checkpoint_dir, "attributes")
        raise ValueError(f"No attribute classifier in {folder}: train it first (python directions.py --checkpoint "
                         f"{config.outputs.checkpoint_dir} --data …, or python -m facegan.attributes --data … "
                         "--out FOLDER)")
    real = load_references(config, celeba, runs_dir, ["training"])["training"].images
    judge = classifier_dir or "attributes"
    biases = records.read_json(os.path.join(out_dir, "judge.json"), [])
    if not any(record["classifier"] == judge for record in biases):  # the judge's own bias, once per classifier
        from facegan.metrics import coverage

        biases.append(dict(classifier=judge, real_faces=len(real), data=config.data.image_path,
                           shares=coverage.softness_bias(classifier[0], classifier[1], real),
                           **records.provenance()))
        records.write_json(os.path.join(out_dir, "judge.json"), biases)
    covered = {(row["step"], row["generator"]) for row in records.read_json(coverage_file(out_dir), [])}
    for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir):
        wanted = [generator for generator in generators if (step, generator) not in covered]
        gan = runs.load_gan(config.outputs.checkpoint_dir, step)[0] if wanted else None
        for generator in wanted:
            faces = draw_faces(records.pick_generator(gan, generator), mode=records.drawing_mode_of(generator),
                               seeds=range(records.JUDGE_SEED, records.JUDGE_SEED + samples))
            measure_coverage(config, step, generator, faces, real, *classifier, out_dir, show, judge=judge)
            covered.add((step, generator))
    write_table(out_dir)
    return records.read_json(coverage_file(out_dir), [])


def faces_file(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, f"faces-{step}.png")


def draw_grids(celeba: str, runs_dir: str, out_dir: str, steps: int = STEPS, every: int = SCORE_EVERY) -> List[str]:
    """The published grid (records.GRID_SEEDS, 8 × 8, drawn by the moving average as faces are drawn by default) of
    each kept checkpoint at a multiple of `every` not yet drawn, as OUT/faces-<step>.png; returns the files."""
    from facegan import runs
    from facegan.drawing import draw_faces
    from facegan.images import image_grid, save_png

    config = scored_config(celeba, runs_dir, steps)
    drawn = []
    for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir):
        if step % every or os.path.exists(faces_file(out_dir, step)):
            continue
        gan = runs.load_gan(config.outputs.checkpoint_dir, step)[0]
        faces = draw_faces(records.pick_generator(gan, GENERATOR), seeds=records.GRID_SEEDS,
                           mode=records.drawing_mode_of(GENERATOR))
        save_png(image_grid(faces, 8, 8), faces_file(out_dir, step))
        drawn.append(faces_file(out_dir, step))
    return drawn


def discriminator_file(out_dir: str) -> str:
    return os.path.join(out_dir, "discriminator.json")


def view_discriminator(celeba: str, runs_dir: str, out_dir: str, cache_dir: Optional[str] = None,
                       steps: int = STEPS, show: bool = True, samples: int = records.SAMPLES,
                       classifier_dir: Optional[str] = None, every: int = SCORE_EVERY,
                       attribute: str = "Male", held_out: int = HELD_OUT) -> List[dict]:
    """What the run's discriminator says at each kept checkpoint at a multiple of `every` not yet viewed
    (facegan/metrics/discriminator.py: mean logits, seconds a point), into OUT/discriminator.json:
    "memorisation", the training faces against the held-out ones, both at the held-out faces' half resolution;
    "real", the training faces CelebA labels with `attribute` (Male) against the others ("men" and "women" for
    Male); "generated", the average's faces the classifier (classifier_dir, default the run's attributes/) calls
    so against the others."""
    import numpy as np

    from facegan import attributes, runs
    from facegan.drawing import draw_faces
    from facegan.metrics import discriminator

    config = scored_config(celeba, runs_dir, steps, cache_dir)
    sets = load_references(config, celeba, runs_dir, ["small_at_half", "held_out", "training"], held_out)
    at_half, training = sets["small_at_half"].images, sets["training"]
    held_out = sets["held_out"].images[:len(at_half)]
    labels = celeba_utils.read_attributes(celeba_utils.find_list(config.data.image_path, "list_attr_celeba.txt"))
    male = dict(zip(labels.files, labels.values[:, labels.names.index(attribute)] > 0))
    is_male = np.array([male[os.path.basename(name)] for name in training.names])
    classifier = _classifier(config, classifier_dir)
    viewed = {row["step"] for row in records.read_json(discriminator_file(out_dir), [])}
    for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir):
        if step in viewed or step % every:
            continue
        gan = runs.load_gan(config.outputs.checkpoint_dir, step)[0]
        judge = gan.discriminator
        trained_on = np.arange(len(at_half) + len(held_out)) < len(at_half)
        row = dict(step=step, images_seen=step * config.training.batch_size, memorisation=discriminator.mean_logits(
            judge, np.concatenate([at_half, held_out]), {"training faces": trained_on, "held-out faces": ~trained_on}),
            real=discriminator.mean_logits(judge, training.images, {"men": is_male, "women": ~is_male}))
        if classifier is not None:
            faces = draw_faces(records.pick_generator(gan, GENERATOR),
                               seeds=range(records.JUDGE_SEED, records.JUDGE_SEED + samples))
            called = attributes.probabilities(classifier[0], faces)[:, list(classifier[1]).index(attribute)] > 0.5
            row["generated"] = discriminator.mean_logits(judge, faces, {"men": called, "women": ~called})
            row["generated_by"] = classifier_dir or "attributes"
        row.update(attribute=attribute, generator=GENERATOR, data=config.data.image_path, seed=config.training.seed,
                   **records.provenance())
        records.write_json(discriminator_file(out_dir), records.read_json(discriminator_file(out_dir), []) + [row])
        if show:
            print(f"step {step:6d} discriminator: " + "; ".join(
                f"{part} " + ", ".join(f"{name} {value['mean_logit']:+.2f}" for name, value in row[part].items())
                for part in ("memorisation", "real", "generated") if part in row), flush=True)
    write_table(out_dir)
    return records.read_json(discriminator_file(out_dir), [])


def score(celeba: str, runs_dir: str, out_dir: str, cache_dir: Optional[str] = None, wait: bool = False,
          trained_every: int = TRAINED_EVERY, steps: int = STEPS, show: bool = True, samples: int = records.SAMPLES,
          held_out: int = HELD_OUT, score_every: int = SCORE_EVERY) -> List[dict]:
    """Score every kept checkpoint not yet scored (with wait, keep looking until step `steps` is scored)."""
    from facegan import runs

    config = scored_config(celeba, runs_dir, steps, cache_dir)
    references = {name: faces.images for name, faces in
                  load_references(config, celeba, runs_dir, REFERENCES, held_out).items()}
    os.makedirs(out_dir, exist_ok=True)
    score_floor(config, references, out_dir, samples)
    while True:
        classifier = _classifier(config)
        kept = [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)]
        for step in steps_to_score(kept, score_every * config.training.batch_size, config.training.batch_size, steps):
            generators = [GENERATOR] + (["trained"] if step % trained_every == 0 else [])
            score_step(config, step, generators, references, out_dir, show, classifier, samples)
        write_table(out_dir)
        if not wait or (kept and kept[-1] >= steps):
            return records.read_results(out_dir)
        time.sleep(60)


def steps_to_score(kept: Sequence[int], every_images: int, batch_size: int, last: int) -> List[int]:
    """The kept checkpoints to score, newest first (the point a user asks for, and a stopped scorer leaves the curve's
    far end measured): each whose images seen are a multiple of `every_images` (0: none), and the run's `last`."""
    return sorted((step for step in kept if step == last or (every_images and step * batch_size % every_images == 0)),
                  reverse=True)


def _classifier(config: Config, folder: Optional[str] = None):
    """(classifier, names) from `folder` (default: the run's attributes/ folder, once directions.py has trained it
    there), else None."""
    from facegan import attributes

    folder = folder or os.path.join(config.outputs.checkpoint_dir, "attributes")
    if not os.path.isfile(os.path.join(folder, attributes.SETTINGS_FILE)):
        return None
    return attributes.load_classifier(folder)


def points(results: Sequence[dict], generator: str = GENERATOR, reference: str = "training") -> List[dict]:
    return sorted((record for record in results if (record["generator"], record["reference"])
                   == (generator, reference)), key=lambda record: record["step"])


def table(results: Sequence[dict]) -> str:
    """FID and the rest at each scored step, the average against both references, the trained generator beside."""
    held = {record["step"]: record for record in points(results, reference="held_out")}
    trained = {record["step"]: record for record in points(results, "trained")}
    lines = ["| images seen | hours of training | FID, training faces | FID, held out | KID ×10³ | SWD ×10³ "
             "| precision | recall | FID, trained generator |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for record in points(results):
        step = record["step"]
        cell = lambda source, key, scale=1.0, form=".1f": (  # noqa: E731
            f"{scale * source[key]:{form}}" if source and source.get(key) is not None else "")
        hours = f"{record['train_seconds'] / 3600:.2f}" if record.get("train_seconds") else ""
        lines.append(f"| {record['images_seen']:,} | {hours} | {cell(record, 'fid')} | {cell(held.get(step), 'fid')} "
                     f"| {cell(record, 'kid', 1e3)} | {cell(record, 'swd')} | {cell(record, 'precision', form='.3f')} "
                     f"| {cell(record, 'recall', form='.3f')} | {cell(trained.get(step), 'fid')} |")
    for floor in (record for record in results if record["generator"] in FLOORS):
        lines += ["", f"The floor, {floor['generator']} against the training faces by the same judge: FID "
                  f"{floor['fid']:.1f}, KID ×10³ {1e3 * floor['kid']:.1f}, precision {floor['precision']:.3f}, "
                  f"recall {floor['recall']:.3f}."]
    machines = sorted({record["machine"] for record in results})
    return "\n".join(lines + [""] + [f"Machine: {machine}" for machine in machines]) + "\n"


def plot(results: Sequence[dict], path: str):
    """FID against images seen and against hours of training, both references and the trained generator."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for generator, reference, style in ((GENERATOR, "training", "-o"), (GENERATOR, "held_out", "--o"),
                                        ("trained", "training", ":s")):
        curve = [record for record in points(results, generator, reference) if record.get("train_seconds")]
        if not curve:
            continue
        label = f"{'average' if generator == GENERATOR else 'trained generator'}, {reference.replace('_', '-')} faces"
        fid = [record["fid"] for record in curve]
        axes[0].plot([record["images_seen"] / 1e3 for record in curve], fid, style, markersize=3, label=label)
        axes[1].plot([record["train_seconds"] / 3600 for record in curve], fid, style, markersize=3, label=label)
    floors = [record for record in results if record["generator"] in FLOORS]
    for axis, label in zip(axes, ("thousands of images seen", "hours of training (steps × median step time)")):
        for floor, style in zip(floors, (":", "-.")):
            axis.axhline(floor["fid"], color="gray", linestyle=style, label=f"{floor['generator']} (a floor)")
        axis.set_xlabel(label)
        axis.set_ylabel("FID (2,048 faces)")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    machines = sorted({record["machine"] for record in results})
    figure.suptitle(f"The defaults on the 5,100-face sample, seed 0 ({'; '.join(machines)})", fontsize=8)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


COVERED = ("Male", "Young", "Smiling", "Eyeglasses", "Blond_Hair", "Bangs", "Wearing_Hat")


def coverage_table(rows: Sequence[dict], bias: Optional[dict] = None) -> str:
    """The share of faces the classifier calls positive, per canonical attribute, at each covered step: the
    average and the trained generator, with the training faces' shares below, and (bias: softness_bias's
    shares) the same faces made soft, which shows how far the judge moves with sharpness alone."""
    by_step = {}
    for row in rows:
        by_step.setdefault(row["step"], {})[row["generator"]] = row
    names = [name for name in COVERED if rows and name in rows[0]["attributes"]]
    lines = ["| images seen | generator | " + " | ".join(names) + " | worst canonical (off by) |",
             "| ---: | --- |" + " ---: |" * len(names) + " --- |"]
    for step in sorted(by_step):
        for generator, row in sorted(by_step[step].items()):
            shares = " | ".join(f"{100 * row['attributes'][name]['generated']:.1f}%" for name in names)
            worst, off = row["worst_canonical"]
            lines.append(f"| {row['images_seen']:,} | {generator} | {shares} | {worst} ({100 * off:.0f}%) |")
    if rows:
        real = " | ".join(f"{100 * rows[-1]['attributes'][name]['real']:.1f}%" for name in names)
        lines.append(f"| | the training faces ({rows[-1]['real_faces']:,}) | {real} | |")
    for label, shares in (bias or {}).items():
        if label != "as they are":
            softer = " | ".join(f"{100 * shares[name]:.1f}%" for name in names)
            lines.append(f"| | the training faces {label} (the judge's bias) | {softer} | |")
    return "\n".join(lines) + "\n"


def discriminator_table(rows: Sequence[dict]) -> str:
    """The discriminator's mean logit on each group at each step viewed (higher: more real)."""
    def cell(row, part, name):
        group = row.get(part, {}).get(name)
        return "" if group is None or group["mean_logit"] is None else f"{group['mean_logit']:+.2f}"

    lines = ["| images seen | training faces (half size) | held-out faces (half size) | real men | real others "
             "| generated men (share) | generated others |", "| ---: |" + " ---: |" * 6]
    for row in sorted(rows, key=lambda row: row["step"]):
        generated = row.get("generated", {})
        share = (f" ({generated['men']['faces'] / (generated['men']['faces'] + generated['women']['faces']):.1%})"
                 if generated else "")
        lines.append(f"| {row['images_seen']:,} | {cell(row, 'memorisation', 'training faces')} | "
                     f"{cell(row, 'memorisation', 'held-out faces')} | {cell(row, 'real', 'men')} | "
                     f"{cell(row, 'real', 'women')} | {cell(row, 'generated', 'men')}{share} | "
                     f"{cell(row, 'generated', 'women')} |")
    return "\n".join(lines) + "\n"


def write_table(out_dir: str):
    viewed = records.read_json(discriminator_file(out_dir), [])
    if viewed:
        with atomic_write(os.path.join(out_dir, "discriminator.md"), "w") as handle:
            handle.write(discriminator_table(viewed))
    covered = records.read_json(coverage_file(out_dir), [])
    if covered:
        judge = covered[-1].get("classifier", "attributes")
        bias = next((record["shares"] for record in records.read_json(os.path.join(out_dir, "judge.json"), [])
                     if record["classifier"] == judge), None)
        with atomic_write(os.path.join(out_dir, "coverage.md"), "w") as handle:
            handle.write(coverage_table(covered, bias))
    results = records.read_results(out_dir)
    if not results:
        return
    with atomic_write(os.path.join(out_dir, "table.md"), "w") as handle:
        handle.write(table(results))
    plot(results, os.path.join(out_dir, "curve.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celeba", required=True, help="the folder holding img_align_celeba/ and "
                        "img_align_celeba_89x109/")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="where the run trains (default ~/dcgan-long-run)")
    parser.add_argument("--out", required=True, help="where results.json, table.md and curve.png go (docs/long-run "
                        "for the published ones)")
    parser.add_argument("--part", choices=("train", "score", "coverage", "discriminator", "faces", "all"),
                        default="all", help="coverage: the attribute coverage alone of every kept checkpoint (no "
                        "FID: fast); discriminator: what the discriminator says of training, held-out, male and "
                        "other faces; faces: the published 8 × 8 grid at every --score-every steps, "
                        "OUT/faces-<step>.png")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"train toward this step (default {STEPS:,})")
    parser.add_argument("--score-every", type=int, default=SCORE_EVERY,
                        help=f"score the checkpoints at multiples of this step (default {SCORE_EVERY:,})")
    parser.add_argument("--trained-every", type=int, default=TRAINED_EVERY,
                        help="score the trained generator too at multiples of this step")
    parser.add_argument("--wait", action="store_true", help="score: keep scoring checkpoints as they land")
    parser.add_argument("--generators", default=f"{GENERATOR},trained", help="coverage: which generators "
                        f"({', '.join(records.GENERATORS)}, or average_<half-life> for one of the run's "
                        f"extra_averages), comma-separated (default {GENERATOR},trained)")
    parser.add_argument("--classifier", help="coverage: the attribute classifier's folder (default RUNS/my_net/"
                        "attributes), e.g. one trained with python -m facegan.attributes --soften 0.5")
    add_arguments(parser, ("cache_dir",))
    arguments = parser.parse_args(argv)
    for generator in arguments.generators.split(","):
        try:
            records.check_generator(generator)
        except ValueError as error:
            parser.error(str(error))
    if arguments.part in ("train", "all"):
        from facegan import training

        run = training.train(run_config(arguments.celeba, arguments.runs, arguments.steps, arguments.cache_dir))
        if run.stopped:
            return
    if arguments.part == "coverage":
        cover(arguments.celeba, arguments.runs, arguments.out, arguments.cache_dir, arguments.steps,
              classifier_dir=arguments.classifier, generators=arguments.generators.split(","))
    if arguments.part == "discriminator":
        view_discriminator(arguments.celeba, arguments.runs, arguments.out, arguments.cache_dir, arguments.steps,
                           classifier_dir=arguments.classifier, every=arguments.score_every)
    if arguments.part == "faces":
        print("\n".join(draw_grids(arguments.celeba, arguments.runs, arguments.out, arguments.steps,
                                    arguments.score_every)))
    if arguments.part in ("score", "all"):
        results = score(arguments.celeba, arguments.runs, arguments.out, arguments.cache_dir, arguments.wait,
                        arguments.trained_every, arguments.steps, score_every=arguments.score_every)
        print(table(results))


if __name__ == "__main__":
    main()
