"""The recipe at the long budget (issue #32), screened by attribute coverage: each candidate change alone against
the defaults, trained from the same seeds on the CelebA sample to a budget of images with a checkpoint every
50,000 images, every checkpoint's coverage measured (the average and the trained generator, by one attribute
classifier: seconds a point, where FID takes minutes).

    python -m experiments.long_recipe --celeba ../shared/celeba --classifier ~/dcgan-long-run/my_net/attributes-soft \
        --budget 150000 --candidates defaults,minibatch_stddev --seeds 0,1 --out docs/long-recipe

Each run trains into RUNS/<candidate>[-seedN]/ (default ~/dcgan-long-recipe: trained on CelebA, the networks stay
out of the project) and resumes when stopped; its coverage goes to OUT/<candidate>[-seedN]/coverage.json
(experiments/long_run.cover, which skips what is measured), and OUT/table.md compares the runs on one attribute
(--attribute, default Male: the generator's most dropped kind of face) and, where --fid scored them, judges each
candidate against the defaults by the ablation's rule (two seeds screen, three adopt; a join also against
each of its parts). Changes joined by "+" (translation_only+ttur) are measured together, as one candidate. The
change the rule adopts at 800,000 images (`adopted`) is part of the defaults: tests/test_ablation.py checks
facegan/config.py against docs/long-recipe/800k.
--extra-averages 10000,30000 keeps further moving averages in each run (they change no training), covered at
every checkpoint and scored at the last as generators average_10000, average_30000. Train
the classifier once (on partly blurred faces by default, so that it judges softer generated faces fairly):
python -m facegan.attributes --data … --out FOLDER.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import math
import os
from typing import Dict, List, Optional, Sequence

from experiments import ablation, long_run, recipes, records
from facegan.images import atomic_write
from facegan.settings_text import add_arguments

CHECKPOINT_IMAGES = 50_000  # a checkpoint, and a coverage point, every this many images
DEFAULT_RUNS = os.path.join(os.path.expanduser("~"), "dcgan-long-recipe")
SETTLED_IMAGES = 100_000  # the table's mean is over the checkpoints from here on: the first drop happens before


def run_config(candidate: str, celeba: str, runs_dir: str, budget: int, seed: int = 0,
               cache_dir: Optional[str] = None, checkpoint_images: int = CHECKPOINT_IMAGES, **settings):
    """The defaults with the candidate's change (or changes, joined by "+"), from `seed`, toward `budget` images in
    RUNS/<run name>/ (`settings` change others: the tests' tiny networks)."""
    values = {**recipes.long_candidate_settings(candidate), **settings}
    batch_size = values.pop("batch_size", 100)
    return long_run.run_config(celeba, os.path.join(runs_dir, records.run_name(candidate, seed)),
                               steps=math.ceil(budget / batch_size), cache_dir=cache_dir,
                               checkpoint_every=max(1, round(checkpoint_images / batch_size)),
                               batch_size=batch_size, seed=seed, **values)


def screen(candidates: Sequence[str], seeds: Sequence[int], celeba: str, runs_dir: str, out_dir: str, budget: int,
           classifier_dir: str, cache_dir: Optional[str] = None, show: bool = True, samples: int = records.SAMPLES,
           checkpoint_images: int = CHECKPOINT_IMAGES, attribute: str = "Male", fid: bool = False,
           fid_every: int = 0, **settings) -> List[dict]:
    """Train (or resume) each candidate from each seed, then measure each kept checkpoint's coverage not yet
    measured, and with `fid` score the run's last checkpoint (the average: FID, KID, SWD, precision and recall
    against the training faces, minutes a point), and with `fid_every` also each kept checkpoint at a multiple of
    that many images, into OUT/<run>/results.json (what is scored is skipped); returns every run's coverage rows,
    each with its candidate and seed."""
    from facegan import runs, training

    real = None
    for seed in seeds:
        for candidate in candidates:
            config = run_config(candidate, celeba, runs_dir, budget, seed, cache_dir, checkpoint_images, **settings)
            if training.train(config, show=show).stopped:  # stopped by hand: the next screen resumes this run
                write_table(out_dir, attribute)
                return collect(out_dir, candidates, seeds)
            name = records.run_name(candidate, seed)
            extra_averages = [f"average_{half_life}" for half_life in config.recipe.extra_averages]
            long_run.cover(celeba, os.path.join(runs_dir, name), os.path.join(out_dir, name), cache_dir,
                           config.training.steps, show, samples, classifier_dir,
                           generators=[long_run.GENERATOR, "trained", *extra_averages])
            if fid:
                if real is None:  # the same faces for every candidate: loaded once
                    real = long_run.load_references(config, celeba, runs_dir, ["training"])["training"].images
                for step in fid_steps(config, [step for step, _ in runs.list_checkpoints(
                        config.outputs.checkpoint_dir)], fid_every):
                    # the extra averages at the last step only: each is minutes of scoring
                    generators = [long_run.GENERATOR] + (extra_averages if step == config.training.steps else [])
                    long_run.score_step(config, step, generators, {"training": real}, os.path.join(out_dir, name),
                                        show, samples=samples)
    write_table(out_dir, attribute)
    return collect(out_dir, candidates, seeds)


def fid_steps(config, kept: Sequence[int], fid_every: int = 0) -> List[int]:
    """The kept checkpoints to score, newest first: the run's last step, and with `fid_every` each whose images seen
    are a multiple of it (a budget the table judges the candidates at)."""
    return long_run.steps_to_score(kept, fid_every, config.training.batch_size, config.training.steps)


def collect(out_dir: str, candidates: Sequence[str], seeds: Sequence[int]) -> List[dict]:
    """Every run's coverage rows, each with its candidate, and the FID of its step where it was scored."""
    rows = []
    for seed in seeds:
        for candidate in candidates:
            folder = os.path.join(out_dir, records.run_name(candidate, seed))
            scored = {(record["step"], record["generator"]): record["fid"] for record in records.read_results(folder)}
            for row in records.read_json(long_run.coverage_file(folder), []):
                rows.append(dict(row, candidate=candidate, fid=scored.get((row["step"], row["generator"]))))
    return rows


def settled_share(rows: Sequence[dict], attribute: str, settled: int = SETTLED_IMAGES) -> Optional[float]:
    """The mean generated share of `attribute` over the rows from `settled` images on."""
    shares = [row["attributes"][attribute]["generated"] for row in rows if row["images_seen"] >= settled]
    return sum(shares) / len(shares) if shares else None


def _scores(rows: Sequence[dict], generator: str) -> Dict[int, Dict[str, Dict[int, float]]]:
    """images seen → candidate → seed → the FID of `generator` there."""
    scores: Dict[int, Dict[str, Dict[int, float]]] = {}
    for row in rows:
        if row.get("fid") is not None and row["generator"] == generator:
            scores.setdefault(row["images_seen"], {}).setdefault(row["candidate"], {})[row["seed"]] = row["fid"]
    return scores


def _comparisons(scored: Dict[str, Dict[int, float]], candidate: str, label: str) -> List[ablation.Comparison]:
    """The candidate against the defaults and against each of its parts ("a+b": a and b) scored at one budget."""
    by_seed = scored[candidate]
    return [ablation.Comparison(label, incumbent, "quality", [by_seed[seed] for seed in sorted(by_seed)],
                                [scored[incumbent][seed] for seed in sorted(scored[incumbent])])
            for incumbent in dict.fromkeys(["defaults", *candidate.split("+")])  # a lone candidate: itself, skipped
            if candidate != incumbent and scored.get(incumbent)]


def verdicts(rows: Sequence[dict], generator: str = long_run.GENERATOR) -> List[ablation.Comparison]:
    """Each candidate against the defaults by the ablation's rule (ablation.Comparison): the FID of `generator`
    at each budget where both were scored, one score per seed. A join ("a+b") is judged against each of its parts
    scored at that budget too: a join adopted must beat the change it adds to, not only the defaults."""
    scores = _scores(rows, generator)
    return [comparison for images_seen in sorted(scores) for candidate in scores[images_seen]
            for comparison in _comparisons(scores[images_seen], candidate, f"{candidate} at {images_seen:,} images")]


def adopted(rows: Sequence[dict], images_seen: int, generator: str = long_run.GENERATOR) -> Optional[str]:
    """The change the rule adopts at `images_seen` images: of the candidates it adopts there against the defaults
    and against each of their parts (verdicts), the one of the lowest mean FID; None when it adopts none."""
    scored = _scores(rows, generator).get(images_seen, {})
    judged = {candidate: _comparisons(scored, candidate, candidate) for candidate in scored if candidate != "defaults"}
    winners = [candidate for candidate, comparisons in judged.items()
               if any(comparison.incumbent == "defaults" for comparison in comparisons)
               and all(comparison.verdict == "adopt" for comparison in comparisons)]
    return min(winners, key=lambda candidate: sum(scored[candidate].values()) / len(scored[candidate]), default=None)


def table(rows: Sequence[dict], attribute: str = "Male", settled: int = SETTLED_IMAGES) -> str:
    """One line per run and generator: the attribute's generated share at each checkpoint's images seen, its mean
    from `settled` images on, and the FID of the run's scored step (against the training faces); the real faces'
    share last."""
    if rows and attribute not in rows[0]["attributes"]:
        raise ValueError(f"The classifier does not judge {attribute!r}: choose among "
                         f"{', '.join(rows[0]['attributes'])}")
    runs: Dict[tuple, List[dict]] = {}
    for row in rows:
        runs.setdefault((row["candidate"], row["seed"], row["generator"]), []).append(row)
    seen = sorted({row["images_seen"] for row in rows})
    lines = ["| candidate | seed | generator | " + " | ".join(f"{images:,}" for images in seen)
             + f" | mean from {settled:,} | FID (images seen) |",
             "| --- | ---: | --- |" + " ---: |" * (len(seen) + 2)]
    for (candidate, seed, generator), run in runs.items():
        at = {row["images_seen"]: row["attributes"][attribute]["generated"] for row in run}
        cells = " | ".join(f"{100 * at[images]:.1f}%" if images in at else "" for images in seen)
        mean = settled_share(run, attribute, settled)
        fids = [f"{row['fid']:.1f} ({row['images_seen']:,})" for row in run if row.get("fid") is not None]
        lines.append(f"| {candidate} | {seed} | {generator} | {cells} | "
                     f"{'' if mean is None else f'{100 * mean:.1f}%'} | {', '.join(fids)} |")
    judged: Dict[float, List[str]] = {}  # the real faces' share → the runs judged by a classifier that gives it
    for row in rows:
        runs_judged = judged.setdefault(round(row["attributes"][attribute]["real"], 4), [])
        if f"{row['candidate']} {row['seed']}" not in runs_judged:
            runs_judged.append(f"{row['candidate']} {row['seed']}")
    for real, runs_judged in judged.items():  # one line unless the runs were judged by different classifiers
        judge = f", as the classifier of {', '.join(runs_judged)} calls them" if len(judged) > 1 else ""
        lines.append(f"| the training faces{judge} | | | {100 * real:.1f}% |" + " |" * (len(seen) + 1))
    machines = sorted({row["machine"] for row in rows if "machine" in row})
    arithmetic = sorted({row["arithmetic"] for row in rows if "arithmetic" in row})
    where = (f"\nMeasured on: {'; '.join(machines)}; data: {', '.join(sorted({row['data'] for row in rows}))}"
             + (f"; arithmetic: {', '.join(arithmetic)}" if arithmetic else "") + "\n") if machines else ""
    rule = [f"- {comparison.describe()}" for comparison in verdicts(rows)]
    if rule:
        lines += ["", f"By the ablation's rule (FID of {long_run.GENERATOR} against the training faces, one score per "
                  f"seed; a change is adopted on at least {ablation.MIN_SEEDS} seeds a side, when its mean is better "
                  "by more than the standard error):", *rule]
    return f"{attribute}: the share of faces the classifier calls positive\n\n" + "\n".join(lines) + "\n" + where


def screened(out_dir: str) -> List[tuple]:
    """(candidate, seed) of every run with records in OUT, whichever screen measured it: single candidates in
    recipes.LONG_CANDIDATES' order, then joined ones, seeds rising."""
    found = []
    for name in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
        run = records.parse_run_name(name)
        if run and all(part in recipes.LONG_CANDIDATES for part in run[0].split("+")):
            found.append(run)
    order = list(recipes.LONG_CANDIDATES)
    return sorted(found, key=lambda run: (run[0].count("+"), [order.index(part) for part in run[0].split("+")],
                                          run[1]))


def read_rows(out_dir: str) -> List[dict]:
    """Every run's coverage rows in OUT, whichever screen measured it (collect)."""
    return [row for candidate, seed in screened(out_dir) for row in collect(out_dir, [candidate], [seed])]


def write_table(out_dir: str, attribute: str = "Male"):
    """OUT/table.md: every run screened into OUT, not only the last screen's."""
    rows = read_rows(out_dir)
    if rows:
        os.makedirs(out_dir, exist_ok=True)
        with atomic_write(os.path.join(out_dir, "table.md"), "w") as handle:
            handle.write(table(rows, attribute))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celeba", required=True, help="the folder holding img_align_celeba/")
    parser.add_argument("--classifier", required=True, help="the attribute classifier's folder (python -m "
                        "facegan.attributes … --out FOLDER)")
    parser.add_argument("--candidates", default=",".join(recipes.LONG_CANDIDATES),
                        help="which, comma-separated (default all); join changes with '+' to measure them "
                        "together (translation_only+ttur)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated (default 0)")
    parser.add_argument("--budget", type=int, default=150_000, help="images each run sees (default 150,000)")
    parser.add_argument("--fid", action="store_true", help="also score each run's last checkpoint (FID, KID, SWD, "
                        "precision and recall against the training faces: minutes a run)")
    parser.add_argument("--fid-every", type=int, default=0, help="with --fid, also score each checkpoint at a "
                        "multiple of this many images, so that table.md judges the candidates at each (default 0: "
                        "the last only)")
    parser.add_argument("--attribute", default="Male", help="the attribute OUT/table.md compares (default Male)")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="where the runs train (default ~/dcgan-long-recipe)")
    parser.add_argument("--out", required=True, help="where the coverage records and table.md go")
    add_arguments(parser, ("cache_dir", "extra_averages"))
    arguments = parser.parse_args(argv)
    candidates = [name for name in arguments.candidates.split(",") if name]
    for name in candidates:
        try:
            recipes.long_candidate_settings(name)
        except ValueError as error:
            parser.error(str(error))
    seeds = [int(seed) for seed in arguments.seeds.split(",") if seed]
    screen(candidates, seeds, arguments.celeba, arguments.runs, arguments.out, arguments.budget,
           arguments.classifier, arguments.cache_dir, attribute=arguments.attribute, fid=arguments.fid,
           fid_every=arguments.fid_every,
           **(dict(extra_averages=arguments.extra_averages) if arguments.extra_averages else {}))


if __name__ == "__main__":
    main()
