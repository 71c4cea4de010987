"""The ablation: each change to the DCGAN recipe alone against the plain recipe, for the same images seen, scored
by the same judge (FID, KID and SWD, facegan/metrics). One command reproduces docs/ablation:

    python -m experiments.ablation --data path/to/img_align_celeba --budget 96000 --out docs/ablation

Each setting trains into RUNS/<setting>/ (default ~/dcgan-ablation: the networks are trained on CelebA, so they
stay out of the project) and is resumed when stopped. Every run also keeps the moving average of its generator,
which does not change training, so one run scores three generators: "trained" (the network the optimizer moves),
"average" (its exponential moving average, drawing with the trained generator's batch-norm statistics, as every
average did before) and "average_precise_bn" (the average with statistics measured on its own faces:
drawing.ready_generator, how faces are drawn by default). The plain run alone tells what each is worth.

Scores go to OUT/results.json, one record per setting, generator and budget, written as each is measured; a
setting already scored is not run again. OUT/table.md holds the table and OUT/<setting>-<generator>.png an 8×8
grid of generated faces (never training images). Setting names joined by "+" combine settings: "ttur+flip_faces";
"chosen" combines every setting whose default generator scored a lower FID than the plain recipe's, alone. The
defaults (facegan/config.py) are the best measured run, alone or combined: chosen_defaults().
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import dataclasses
import os
from typing import List, Optional, Sequence

import numpy as np

import celeba_utils
from experiments.recipes import SETTINGS, images_seen_by, overrides_of, run_config
from experiments.records import (DEFAULT_GENERATOR, GENERATORS, GRID_SEEDS, JUDGE_SEED, SAMPLES, drawing_mode_of,
                                 pick_generator, provenance, read_results, record_scores, run_fields, run_name,
                                 write_results)
from facegan.config import Config
from facegan.images import atomic_write, image_grid
from facegan import drawing
from facegan.metrics import maths, registry, sampler
from facegan import runs
from facegan import training
from facegan.settings_text import add_arguments

# Training times closer than this share are a tie: three runs of one setting on one machine differed by up to
# 6.4% (kernel 4 + reused fakes in float32 on Zen 4: 1,213–1,291 s), so a smaller gap says nothing about speed
TIME_TIE = 0.07
DEFAULT_RUNS = os.path.join(os.path.expanduser("~"), "dcgan-ablation")


def seed_of(record: dict) -> int:
    """A record's training seed: records written before seeds were recorded are seed 0's."""
    return record.get("seed", 0)


def find(results: Sequence[dict], setting: str, generator: str, images_seen: int, seed: int = 0) -> Optional[dict]:
    """The record of one run's generator."""
    for record in results:
        key = (record["setting"], record["generator"], record["images_seen"], seed_of(record))
        if key == (setting, generator, images_seen, seed):
            return record
    return None


def chosen_combination(results: Sequence[dict], images_seen: int, generator: str = DEFAULT_GENERATOR,
                       metric: str = "fid") -> str:
    """The settings that each, alone, scored a lower `metric` than the plain recipe with the same generator and
    images seen, joined by '+' (best first): the combination the numbers choose. "plain" if none did. Only the
    ablation's own runs (training seed 0) choose."""
    plain = find(results, "plain", generator, images_seen)
    if plain is None or metric not in plain:
        raise ValueError(f"No {metric} of the plain recipe's {generator} generator at {images_seen:,} images seen: "
                         "run the plain setting first")
    scores = {name: find(results, name, generator, images_seen) for name in SETTINGS if name != "plain"}
    better = sorted((record[metric], name) for name, record in scores.items()
                    if record is not None and metric in record and record[metric] < plain[metric])
    return "+".join(name for _, name in better) or "plain"


MIN_SEEDS = 3  # a default changes only on the mean of at least this many training seeds, on both sides
# The defaults' history as the ablation's settings: from the plain recipe, each change in turn, and why it was made.
# A "quality" change must beat the incumbent; a "speed" change (less work per image, faster arithmetic) must train
# faster on one machine and score no worse.
LADDER = (
    ("diff_augment", "quality"),
    ("diff_augment+kernel_4+reuse_fakes", "speed"),
    ("diff_augment+kernel_4+reuse_fakes+auto_precision", "speed"),
    ("diff_augment_translation_cutout+kernel_4+reuse_fakes+auto_precision", "quality"),
)


def float32_ladder(ladder=LADDER):
    """The same history where "auto" is float32 (CPUs without bfloat16 instructions): no precision rung."""
    return tuple((setting.replace("+auto_precision", ""), reason) for setting, reason in ladder
                 if not setting.endswith("+auto_precision") or "translation_cutout" in setting)


def seed_scores(results: Sequence[dict], setting: str, images_seen: int, generator: str = DEFAULT_GENERATOR,
                metric: str = "fid") -> List[float]:
    """A setting's scores, one per training seed (the first record of a seed if it was scored twice)."""
    by_seed = {}
    for record in results:
        if (record["setting"], record["generator"], record["images_seen"]) == (setting, generator, images_seen) \
                and metric in record:
            by_seed.setdefault(seed_of(record), record[metric])
    return [by_seed[seed] for seed in sorted(by_seed)]


@dataclasses.dataclass
class Comparison:
    """A challenger against the incumbent over their training seeds: the difference of the mean scores (negative:
    the challenger is better) and its standard error, sqrt(s²c/nc + s²i/ni) from each side's seed spread."""
    challenger: str
    incumbent: str
    reason: str  # "quality" or "speed"
    challenger_scores: List[float]
    incumbent_scores: List[float]
    faster: Optional[bool] = None  # for "speed": trained faster on a machine where both ran (None: no such machine)

    @property
    def enough_seeds(self) -> bool:
        return min(len(self.challenger_scores), len(self.incumbent_scores)) >= MIN_SEEDS

    @property
    def difference(self) -> float:
        return float(np.mean(self.challenger_scores) - np.mean(self.incumbent_scores))

    @property
    def standard_error(self) -> float:
        return float(np.sqrt(sum(np.var(scores, ddof=1) / len(scores) for scores in (self.challenger_scores,
                                                                                      self.incumbent_scores))))

    @property
    def verdict(self) -> str:
        """"adopt", "keep the incumbent", or "undecided" (fewer than MIN_SEEDS seeds on a side, or no common machine
        for a speed change)."""
        if not self.enough_seeds or (self.reason == "speed" and self.faster is None):
            return "undecided"
        if self.reason == "quality":
            return "adopt" if self.difference < -self.standard_error else "keep the incumbent"
        return "adopt" if self.faster and self.difference <= self.standard_error else "keep the incumbent"

    def describe(self) -> str:
        def side(scores):
            spread = f" ± {np.std(scores, ddof=1):.1f}" if len(scores) > 1 else ""
            return f"{np.mean(scores):.1f}{spread} (n={len(scores)})" if scores else "unmeasured (n=0)"
        error = f", standard error {self.standard_error:.1f}" if min(map(len, (self.challenger_scores,
                                                                              self.incumbent_scores))) > 1 else ""
        return (f"{self.challenger} ({self.reason}): {side(self.challenger_scores)} against {self.incumbent} "
                f"{side(self.incumbent_scores)}{error}: {self.verdict}")


def faster_on_one_machine(results: Sequence[dict], challenger: str, incumbent: str, images_seen: int,
                          generator: str = DEFAULT_GENERATOR) -> Optional[bool]:
    """Whether the challenger trained faster than the incumbent, by more than TIME_TIE, on a machine where both
    ran (each side's fastest run there: another process sharing the machine only ever slows a run down); None
    when no machine ran both."""
    machines = {record.get("machine") for record in results if record["setting"] == challenger}
    for machine in sorted(machine for machine in machines if machine):
        ours = seconds_on(results, challenger, machine, images_seen, generator)
        theirs = seconds_on(results, incumbent, machine, images_seen, generator)
        if ours and theirs:
            return ours < theirs * (1 - TIME_TIE)
    return None


def walk_ladder(results: Sequence[dict], images_seen: int, ladder=LADDER, generator: str = DEFAULT_GENERATOR,
                metric: str = "fid") -> List[Comparison]:
    """Each rung of the ladder against the incumbent of its time ("plain" first; a rung adopted becomes the
    incumbent, an undecided one too, since it is the default the project has been using)."""
    incumbent, comparisons = "plain", []
    for challenger, reason in ladder:
        faster = faster_on_one_machine(results, challenger, incumbent, images_seen, generator) \
            if reason == "speed" else None
        comparison = Comparison(challenger, incumbent, reason,
                                seed_scores(results, challenger, images_seen, generator, metric),
                                seed_scores(results, incumbent, images_seen, generator, metric), faster)
        comparisons.append(comparison)
        if comparison.verdict != "keep the incumbent":
            incumbent = challenger
    return comparisons


def chosen_defaults(results: Sequence[dict], images_seen: int, ladder=LADDER, generator: str = DEFAULT_GENERATOR,
                    metric: str = "fid") -> str:
    """The defaults' setting: the last rung of the ladder the rule did not turn down (walk_ladder)."""
    incumbent = "plain"
    for comparison in walk_ladder(results, images_seen, ladder, generator, metric):
        if comparison.verdict != "keep the incumbent":
            incumbent = comparison.challenger
    return incumbent


def seconds_on(results: Sequence[dict], setting: str, machine: str, images_seen: int,
               generator: str = DEFAULT_GENERATOR) -> Optional[float]:
    """A setting's training time (steps × median step time) on one machine, from any of its seeds' runs."""
    times = [record["train_seconds"] for record in results
             if (record["setting"], record.get("machine"), record["images_seen"], record["generator"])
             == (setting, machine, images_seen, generator) and record.get("train_seconds")]
    return min(times) if times else None


def seed_table(results: Sequence[dict], images_seen: int, generator: str = DEFAULT_GENERATOR) -> str:
    """Every setting's FID, KID and SWD as mean ± the seeds' standard deviation, with n, for one generator."""
    lines = [f"| setting ({generator}, {images_seen:,} images) | n | FID | KID ×10³ | SWD ×10³ |",
             "| --- | ---: | ---: | ---: | ---: |"]
    settings = list(dict.fromkeys(record["setting"] for record in results))
    for setting in settings:
        cells = []
        for metric, scale in (("fid", 1), ("kid", 1e3), ("swd", 1)):
            scores = [scale * score for score in seed_scores(results, setting, images_seen, generator, metric)]
            spread = f" ± {np.std(scores, ddof=1):.1f}" if len(scores) > 1 else ""
            cells.append(f"{np.mean(scores):.1f}{spread}" if scores else "")
        count = max(len(seed_scores(results, setting, images_seen, generator, metric)) for metric in ("fid", "swd"))
        if count:
            lines.append(f"| {setting} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def score_run(config: Config, setting: str, generators: Sequence[str], real: np.ndarray, samples: int,
              out_dir: str, metric_names: Sequence[str] = ("fid", "kid", "swd"), show: bool = True):
    """Score each generator of a finished run, saving each record and grid as soon as it is measured."""
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    steps = int(gan.step.numpy())
    images_seen = images_seen_by(config, steps)
    for generator in generators:
        if find(read_results(out_dir), setting, generator, images_seen, config.training.seed):
            continue
        network = pick_generator(gan, generator)
        mode = drawing_mode_of(generator)
        scores = sampler.score_generator(network, real, metric_names, samples, JUDGE_SEED, config.data.cache_dir,
                                         mode)
        grid = image_grid(drawing.draw_faces(network, seeds=GRID_SEEDS, mode=mode), 8, 8)
        record_scores(out_dir, scores, grid, show, setting=setting,
                      **run_fields(config, overrides_of(setting), generator, steps),
                      training_folders=os.path.basename(config.data.image_path.rstrip("/")),
                      training_faces=len(real), reference="training", reference_faces=min(samples, len(real)))


PEER = "pytorch_dcgan"  # ../shared/anchors/torch_dcgan.py: the pytorch/examples recipe, trained by torch


def score_peer(samples_file: str, data: str, images_seen: int, train_seconds: float, images_per_second: float,
               out_dir: str, metric_names: Sequence[str] = ("fid", "kid", "swd"),
               cache_dir: Optional[str] = None, show: bool = True) -> dict:
    """Score the faces another program drew (an .npz whose array x holds uint8 NHWC faces, as torch_dcgan.py
    --samples writes) by the same judge as the ablation's runs, recorded as the setting PEER."""
    with np.load(samples_file) as archive:
        faces = archive["x"]
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"{samples_file}: x must hold uint8 faces of shape (n, height, width, 3), got "
                         f"{faces.dtype} {faces.shape}")
    real = celeba_utils.load_faces(data, cache_dir=cache_dir, progress=show).images
    scores = registry.evaluate(faces, maths.real_sample(real, len(faces), JUDGE_SEED), metric_names, cache_dir,
                              JUDGE_SEED)
    grid = image_grid(faces[:64], 8, 8)
    return record_scores(out_dir, scores, grid, show, setting=PEER,
                         generator="trained", seed=0, overrides={}, images_seen=images_seen,
                         training_folders=os.path.basename(data.rstrip("/")), training_faces=len(real),
                         reference="training", reference_faces=min(len(faces), len(real)),
                         drawing_mode="the trained generator, batch statistics (pytorch/examples' own way)",
                         train_seconds=round(train_seconds, 1), images_per_second=round(images_per_second, 2),
                         precision="float32")


def table(results: Sequence[dict]) -> str:
    """The results as a Markdown table, by budget, setting, seed and generator, with each FID's change against the
    plain recipe's trained generator (seed 0), the training time (steps × median step time) and speed, and the
    machine each run trained on (listed under the table). A run from another training seed reads "plain, seed 1"."""
    baseline = {record["images_seen"]: record["fid"] for record in results if record["setting"] == "plain"
                and record["generator"] == "trained" and seed_of(record) == 0 and "fid" in record}
    machines = list(dict.fromkeys(record.get("machine", "unknown") for record in results))
    lines = ["| setting | generator | FID | KID ×10³ | SWD ×10³ | FID vs plain | images seen "
             "| training time | images/s | precision | machine |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]

    def order(record):  # settings in SETTINGS' order (combinations, then the peer, last), seeds, generators
        known = record["setting"] in SETTINGS
        rank = list(SETTINGS).index(record["setting"]) if known else len(SETTINGS) + (record["setting"] == PEER)
        return (record["images_seen"], rank, record["setting"], seed_of(record),
                GENERATORS.index(record["generator"]))

    for record in sorted(results, key=order):
        seed = seed_of(record)
        name = record["setting"] if seed == 0 else f"{record['setting']}, seed {seed}"
        machine = f"M{machines.index(record.get('machine', 'unknown')) + 1}"
        if "diverged" in record:
            cells = [name, record["generator"], "diverged", "", "", "", f"{record['images_seen']:,}", "", "", "",
                     machine]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        plain = baseline.get(record["images_seen"])
        change = f"{100 * (record['fid'] - plain) / plain:+.1f}%" if plain and "fid" in record else ""
        hours = f"{record['train_seconds'] / 3600:.2f} h" if record.get("train_seconds") else ""
        speed = record.get("images_per_second") or (record["images_seen"] / record["train_seconds"]
                                                     if record.get("train_seconds") else None)
        speed = f"{speed:.1f}" if speed else ""
        kid = f"{1e3 * record['kid']:.2f}" if "kid" in record else ""
        cells = [name, record["generator"], f"{record.get('fid', float('nan')):.2f}", kid,
                 f"{record.get('swd', float('nan')):.1f}", change, f"{record['images_seen']:,}", hours, speed,
                 record.get("precision", "float32"), machine]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- M{index + 1}: {machine}" for index, machine in enumerate(machines)]
    return "\n".join(lines) + "\n"


def write_table(out_dir: str, images_seen: int = 96_000) -> List[dict]:
    """OUT/table.md from OUT/results.json: every run, then each setting over its seeds, then the rule's verdict on
    each change in the defaults' history (where bfloat16 runs, and in float32); returns the records."""
    results = read_results(out_dir)
    sections = [table(results), "## Over the training seeds\n\n" + seed_table(results, images_seen)]
    for title, ladder in (("where bfloat16 runs (\"auto\": mixed bfloat16)", LADDER),
                          ("in float32 (\"auto\" on CPUs without bfloat16 instructions)", float32_ladder())):
        verdicts = "\n".join(f"{index + 1}. {comparison.describe()}" for index, comparison in
                             enumerate(walk_ladder(results, images_seen, ladder)))
        sections.append(f"## The rule, {title}\n\n{verdicts}\n\nThe defaults: "
                        f"{chosen_defaults(results, images_seen, ladder)}\n")
    with atomic_write(os.path.join(out_dir, "table.md"), "w") as handle:
        handle.write("\n".join(sections))
    return results


def ablate(data: str, settings: Sequence[str], budget: int = 96_000, runs_dir: str = DEFAULT_RUNS,
           out_dir: str = os.path.join(DEFAULT_RUNS, "results"), samples: int = SAMPLES,
           generators: Sequence[str] = GENERATORS, metric_names: Sequence[str] = ("fid", "kid", "swd"),
           cache_dir: Optional[str] = None, show: bool = True, seed: int = 0, **network) -> List[dict]:
    """Train (or resume) and score each setting from the training seed `seed` (the ablation's runs are seed 0's;
    another seed runs a setting again to see how much its scores owe to chance); returns every record in
    OUT/results.json. The setting "chosen" stands for chosen_combination() of the results so far."""
    if "chosen" in settings:
        plain = run_config("plain", data, budget, runs_dir, **network)
        images_seen = images_seen_by(plain)
        results = read_results(out_dir)
        combination = chosen_combination(results, images_seen)
        unmeasured = [name for name in SETTINGS if not find(results, name, DEFAULT_GENERATOR, images_seen)]
        if show:
            print(f"chosen: {combination}" + (f" (not yet measured: {', '.join(unmeasured)})" if unmeasured else ""))
        settings = [combination if setting == "chosen" else setting for setting in settings]
    for setting in settings:
        overrides_of(setting)  # unknown names fail before any training
    unknown = [generator for generator in generators if generator not in GENERATORS]
    if unknown:
        raise ValueError(f"Unknown generators {unknown}: choose among {', '.join(GENERATORS)}")
    os.makedirs(out_dir, exist_ok=True)
    faces = celeba_utils.load_faces(data, cache_dir=cache_dir, progress=show)
    for setting in settings:
        config = run_config(setting, data, budget, runs_dir, seed=seed, cache_dir=cache_dir, **network)
        images_seen = images_seen_by(config)
        if all(find(read_results(out_dir), setting, generator, images_seen, seed) for generator in generators):
            continue
        try:
            run = training.train(config, show=show, faces=faces)
        except FloatingPointError as error:  # a setting that diverges is a result too: record it, go on
            diverged = [dict(setting=setting, generator=generator, seed=seed, overrides=overrides_of(setting),
                             images_seen=images_seen, diverged=str(error), **provenance()) for generator in generators]
            write_results(out_dir, read_results(out_dir) + diverged)
            if show:
                print(f"{run_name(setting, seed)} diverged: {error}")
            continue
        if run.stopped:
            print(f"stopped during {run_name(setting, seed)}: run the same command again to resume")
            break
        score_run(config, setting, [g for g in GENERATORS if g in generators], faces.images, samples, out_dir,
                  metric_names, show)
    return write_table(out_dir, images_seen_by(run_config("plain", data, budget, runs_dir, **network)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the real faces: img_align_celeba (a folder or zip)")
    parser.add_argument("--budget", type=int, default=96_000, help="images seen by each run (default 96,000)")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, among {', '.join(SETTINGS)}; '+' combines settings; "
                        "'chosen' combines those whose default generator beat the plain recipe's FID")
    parser.add_argument("--generators", default=",".join(GENERATORS), help="which generators to score")
    add_arguments(parser, ("metric_samples", "cache_dir"), flags={"metric_samples": "samples"})
    parser.set_defaults(metric_samples=SAMPLES)
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="where the runs train (default ~/dcgan-ablation)")
    parser.add_argument("--out", required=True, help="where results.json, table.md and the grids go (docs/ablation "
                        "for the published ones)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed (default 0, the ablation's); another seed runs settings again, into "
                        "RUNS/<setting>-seed<N>, to show how much their scores owe to chance")
    parser.add_argument("--peer-samples", help="instead of training: score the faces of PEER, an .npz of "
                        "../shared/anchors/torch_dcgan.py --samples, with --peer-seconds and --peer-images-per-second")
    parser.add_argument("--peer-seconds", type=float, help="the peer's training time for --budget images")
    parser.add_argument("--peer-images-per-second", type=float, help="the peer's training speed")
    arguments = parser.parse_args()
    if arguments.peer_samples:
        score_peer(arguments.peer_samples, arguments.data, arguments.budget, arguments.peer_seconds,
                   arguments.peer_images_per_second, arguments.out, cache_dir=arguments.cache_dir)
        print(table(write_table(arguments.out, arguments.budget)))
        return
    results = ablate(arguments.data, arguments.settings.split(","), arguments.budget, arguments.runs, arguments.out,
                     arguments.metric_samples, arguments.generators.split(","), cache_dir=arguments.cache_dir,
                     seed=arguments.seed)
    print(table(results))


if __name__ == "__main__":
    main()
