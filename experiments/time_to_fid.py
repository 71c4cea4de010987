"""Speed as users feel it: seconds of training until the faces reach a FID, the defaults against the peer, in one
sitting on one machine. Prints the figures and writes OUT/time-to-fid.json and OUT/time-to-fid.png.

    python -m experiments.time_to_fid --data path/to/img_align_celeba --peer path/to/torch_dcgan.py --out docs/speed

Three parts, run one after another (--part all), each in its own process so that neither framework's threads
slow the other; a part already done is not run again:
1. "defaults": train Config's defaults as a user gets them (grids every 100 steps, checkpoints every 500), or
   with --recipe a long-budget candidate of experiments/recipes.py (into RUNS/<recipe>/), for --budget images;
   every --every images, draw the judge's 2,048 faces from the trained generator and from the moving average.
   The seconds counted run from the call to training.train, loading the cached faces and compiling included,
   less the time spent drawing these faces.
2. "peer": the pytorch/examples DCGAN (github.com/pytorch/examples, dcgan/main.py, as a script run with batch
   64, the celeba108 crop and no untimed warm-up; --peer names it) for as many images, drawing its 2,048 faces
   the way it draws them (batch statistics) every --every images, timed by the same rule.
3. "score": every point scored by the ablation's judge (FID of the 2,048 faces against 2,048 training faces),
   and the seconds each curve took to first reach the peer's FID after the whole budget (linear between points).

The faces drawn along the way stay in --runs (default ~/dcgan-time-to-fid): they come from networks trained on
CelebA, which stays out of the project. The figures name the machine.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import contextlib
import gc
import os
import runpy
import subprocess
import sys
import time
from typing import List, Optional, Sequence

import numpy as np

from experiments import recipes, records
from facegan.images import atomic_write
from facegan.settings_text import add_arguments

PARTS = ("defaults", "peer")
SAMPLES = records.SAMPLES  # the ablation's judge: 2,048 generated faces against as many training faces
PEER_BATCH = 64  # the peer's batch, as its README runs it
DEFAULT_RUNS = os.path.join(os.path.expanduser("~"), "dcgan-time-to-fid")


def points_file(runs_dir: str, part: str) -> str:
    return os.path.join(runs_dir, part, "points.json")


def read_points(runs_dir: str, part: str) -> Optional[dict]:
    return records.read_json(points_file(runs_dir, part))


def write_points(runs_dir: str, part: str, record: dict):
    records.write_json(points_file(runs_dir, part), record)


class Stopwatch:
    """Training seconds: the time since start() less the time spent inside paused()."""

    def __init__(self):
        self.started = time.perf_counter()
        self.excluded = 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.excluded

    @contextlib.contextmanager
    def paused(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - started


def save_faces(path: str, faces: dict):
    """The faces of one point (uint8 NHWC arrays by generator), written whole or not at all."""

    with atomic_write(path) as handle:
        np.savez_compressed(handle, **faces)


# --------------------------------------------------------------------------------------------- part 1: the defaults

def run_defaults(data: str, runs_dir: str, budget: int, every: int, seed: int = 0, cache_dir: Optional[str] = None,
                 samples: int = SAMPLES, recipe: str = "defaults", **settings) -> dict:
    """Train the defaults, or the long-budget candidate `recipe` (recipes.LONG_CANDIDATES, e.g.
    "joint_constant_statistics"), with `settings` changed (the tests' tiny networks), for `budget` images into
    RUNS/<recipe>/, drawing the judge's faces every `every` images (see the module)."""
    import keras

    from facegan.config import Config, Training
    from facegan import devices
    from facegan import callbacks, drawing
    from facegan import training

    overrides = recipes.long_candidate_settings(recipe)  # a known candidate, or ValueError naming the choices
    settings = {**overrides, **settings}
    folder = os.path.join(runs_dir, recipe)
    batch_size = settings.get("batch_size", Training.batch_size)
    config = Config(image_path=data, cache_dir=cache_dir, seed=seed, fresh=True, steps=-(-budget // batch_size),
                          checkpoint_dir=os.path.join(folder, "my_net"), sample_dir=os.path.join(folder, "imgs"),
                          **settings)
    points: List[dict] = []
    judge_seeds = range(records.JUDGE_SEED, records.JUDGE_SEED + samples)  # as sampler.score_generator draws

    class DrawFaces(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.previous = 0

        def on_train_batch_end(self, batch, logs=None):
            images = int(logs["step"]) * config.training.batch_size
            previous, self.previous = self.previous, images
            if not callbacks.reached(previous, images, every) and images < budget:
                return
            with watch.paused():
                trained = drawing.ready_generator(self.model, use_average=False)
                faces = {"trained": drawing.draw_faces(trained, seeds=judge_seeds)}
                if self.model.ema_generator is not None:
                    faces["average"] = drawing.draw_faces(drawing.ready_generator(self.model), seeds=judge_seeds)
                path = os.path.join(folder, f"faces-{images:06d}.npz")
                save_faces(path, faces)
            points.append(dict(images=images, seconds=round(watch.seconds(), 2), faces=os.path.basename(path)))
            print(f"{recipe}: {images:,} images in {points[-1]['seconds']:.0f} s of training", flush=True)

    os.makedirs(folder, exist_ok=True)
    watch = Stopwatch()
    training.train(config, show=False, callbacks=[DrawFaces()])
    record = dict(part="defaults", recipe=recipe, overrides=overrides, budget=budget, every=every,
                  batch_size=config.training.batch_size, seed=seed,
                  precision=devices.resolve_precision(config.networks.precision)[0], machine=devices.machine(),
                  date=time.strftime("%Y-%m-%d %H:%M"), points=points)
    write_points(runs_dir, recipe, record)
    return record


# --------------------------------------------------------------------------------------------- part 2: the peer

def peer_generator(optimizer, script: str):
    """The network whose parameters this optimizer moves (the peer's script keeps it in its own namespace)."""
    import torch

    first = optimizer.param_groups[0]["params"][0]
    for thing in gc.get_objects():
        if isinstance(thing, torch.nn.Sequential) and next(thing.parameters(), None) is first:
            return thing
    raise RuntimeError(f"{script}: cannot find the generator its optimizer trains")


def draw_peer_faces(network, seed: int, samples: int, tuned: bool = False) -> np.ndarray:
    """uint8 faces of the peer's generator, drawn its own way (training mode: batch statistics; the tuned peer under
    bfloat16 autocast, as its script samples), in batches of 128 from a random stream of their own, so that the
    peer's training goes on exactly as without the drawing."""
    import torch

    stream = torch.Generator().manual_seed(seed)
    mixed = torch.autocast("cpu", dtype=torch.bfloat16) if tuned else contextlib.nullcontext()
    with torch.no_grad(), mixed:
        faces = torch.cat([network(torch.randn(128, network[0].in_channels, 1, 1, generator=stream)).float()
                           for _ in range(-(-samples // 128))])[:samples]
    return ((faces.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)


class PeerStopped(Exception):
    """Raised from the optimizer's hook when the peer's time is up (its script runs by steps only)."""


def run_peer(script: str, data: str, runs_dir: str, budget: int, every: int, seed: int = 0,
             samples: int = SAMPLES, tuned: bool = False, seconds: Optional[float] = None) -> dict:
    """Run the peer's script for `budget` images, or until `seconds` of its training have passed (the step that
    crosses them is its last); after the generator's update of every `every` images, and after its last, draw
    2,048 faces from its generator in training mode (its own way of drawing), with a random stream of its own,
    so that training goes on exactly as without the drawing. `tuned` runs the tuned bfloat16 peer (`--bf16`:
    autocast and channels_last), the peer a PyTorch user writes on a CPU with bfloat16 instructions."""
    import torch

    if budget % PEER_BATCH or every % PEER_BATCH:
        raise ValueError(f"--budget and --every must be multiples of the peer's batch, {PEER_BATCH}")
    folder = os.path.join(runs_dir, "peer")
    os.makedirs(folder, exist_ok=True)
    points: List[dict] = []
    state = dict(updates=0, generator=None)

    def after_update(optimizer, args, kwargs):
        state["updates"] += 1
        if state["updates"] % 2:  # each step updates the discriminator, then the generator
            return
        images = state["updates"] // 2 * PEER_BATCH
        time_up = seconds is not None and watch.seconds() >= seconds
        if images % every and images < budget and not time_up:
            return
        with watch.paused():
            if state["generator"] is None:
                state["generator"] = peer_generator(optimizer, script)
            path = os.path.join(folder, f"faces-{images:06d}.npz")
            save_faces(path, {"trained": draw_peer_faces(state["generator"], seed, samples, tuned)})
        points.append(dict(images=images, seconds=round(watch.seconds(), 2), faces=os.path.basename(path)))
        print(f"peer: {images:,} images in {points[-1]['seconds']:.0f} s of training", flush=True)
        if time_up:
            raise PeerStopped

    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(after_update)
    arguments = sys.argv
    sys.argv = [script, "--data", data, "--steps", str(budget // PEER_BATCH), "--batch", str(PEER_BATCH),
                "--crop", "celeba108", "--warmup", "0"] + (["--bf16"] if tuned else [])
    watch = Stopwatch()
    try:
        runpy.run_path(script, run_name="__main__")
    except PeerStopped:
        pass
    finally:
        sys.argv = arguments
        hook.remove()
    from facegan import devices  # after training: TensorFlow's threads stay out of the peer's run

    record = dict(part="peer", script=os.path.basename(script), budget=budget, every=every, batch_size=PEER_BATCH,
                  seed=seed, precision="bfloat16 autocast" if tuned else "float32", seconds_limit=seconds,
                  machine=devices.machine(), date=time.strftime("%Y-%m-%d %H:%M"),
                  torch=torch.__version__, points=points)
    write_points(runs_dir, "peer", record)
    return record


# --------------------------------------------------------------------------------------------- part 3: scores

def first_reaching(points: Sequence[dict], target: float, key: str = "fid") -> Optional[float]:
    """The seconds at which a curve first reaches `target` (a score at or below it), linear between its points;
    None if it never does."""
    previous = None
    for point in points:
        if key in point and point[key] <= target:
            if previous is None or key not in previous:
                return point["seconds"]
            share = (previous[key] - target) / (previous[key] - point[key])
            return previous["seconds"] + share * (point["seconds"] - previous["seconds"])
        previous = point
    return None


def first_at_or_below(score, count: int, target: float) -> Optional[int]:
    """The first of `count` points whose score(index) is at or below `target`, found by bisection (for a curve
    that falls as training goes on: the points it skips are never scored), with the point before it scored too,
    for interpolation; None if even the last point is above."""
    low, high = -1, count - 1
    if score(high) > target:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if score(middle) <= target else (middle, high)
    if high > 0:
        score(high - 1)
    return high


class Scorer:
    """Scores the points of both curves by the ablation's judge on demand, each saved as soon as it is measured
    (a score of 2,048 faces takes minutes on a CPU: Inception runs on all of them)."""

    def __init__(self, data: str, runs_dir: str, cache_dir: Optional[str] = None, recipe: str = "defaults"):
        import celeba_utils
        from facegan.metrics import maths

        recipes.long_candidate_settings(recipe)  # a known candidate, or ValueError naming the choices
        self.folders = dict(defaults=recipe, peer="peer")  # the project's side: the recipe's folder
        self.records = {part: read_points(runs_dir, folder) for part, folder in self.folders.items()}
        self.runs_dir, self.cache_dir, self.seed = runs_dir, cache_dir, records.JUDGE_SEED
        self.points("peer")  # no peer curve: say so before loading the faces
        faces = celeba_utils.load_faces(data, cache_dir=cache_dir, progress=False).images
        self.real = maths.real_sample(faces, SAMPLES, self.seed)

    def points(self, part: str) -> List[dict]:
        if self.records[part] is None:
            raise ValueError(f"No {self.folders[part]} curve in {self.runs_dir}: run --part {part} first")
        return self.records[part]["points"]

    def fid(self, part: str, index: int, generator: str = "average") -> float:
        """The FID of one point's faces from `generator` ("trained" or "average"; the peer has only "trained")."""
        from facegan.metrics import registry

        generator = "trained" if part == "peer" else generator
        point = self.points(part)[index]
        key = f"fid_{generator}"
        if key not in point:
            with np.load(os.path.join(self.runs_dir, self.folders[part], point["faces"])) as faces:
                point[key] = round(registry.evaluate(faces[generator], self.real, ["fid"], self.cache_dir,
                                                    self.seed)["fid"], 3)
            write_points(self.runs_dir, self.folders[part], self.records[part])
            print(f"{self.folders[part]} {generator}, {point['images']:,} images: FID {point[key]:.2f}", flush=True)
        return point[key]

    def first_below(self, part: str, generator: str, target: float) -> Optional[int]:
        return first_at_or_below(lambda index: self.fid(part, index, generator), len(self.points(part)), target)

    def fill(self):
        """Score every point not yet scored, coarse first (every second point of each curve, from the end, then
        the others), so that a fill stopped part way still draws whole curves."""
        for finer in (False, True):
            for part, generator in (("peer", "trained"), ("defaults", "average"), ("defaults", "trained")):
                count = len(self.points(part))
                for index in range(count - 1, -1, -1):
                    if bool((count - 1 - index) % 2) == finer:
                        self.fid(part, index, generator)


def curve(points: Sequence[dict], generator: str) -> List[dict]:
    """The scored points of one generator as (images, seconds, fid)."""
    key = f"fid_{generator}"
    return [dict(images=p["images"], seconds=p["seconds"], fid=p[key]) for p in points if key in p]


def score(data: str, runs_dir: str, out_dir: str, cache_dir: Optional[str] = None, fill: bool = False,
          generators: Sequence[str] = ("average", "trained"), recipe: str = "defaults") -> dict:
    """The peer's FID after its whole budget, the seconds each of the defaults' `generators` took to first reach
    it, and the ratio, in OUT/time-to-fid.json with the plot; the points needed for that are scored first (points
    scored before are kept and drawn), the rest with `fill`."""

    scorer = Scorer(data, runs_dir, cache_dir, recipe)
    peer_points = scorer.points("peer")
    target = scorer.fid("peer", len(peer_points) - 1)
    if scorer.records["defaults"] is None:
        raise ValueError(f"The peer's FID after {peer_points[-1]['images']:,} images is {target:.2f}; there is no "
                         f"{recipe} curve in {runs_dir} yet: run --part defaults --recipe {recipe}, with a --budget "
                         "that reaches it")
    for generator in generators:
        scorer.first_below("defaults", generator, target)
    if fill:
        scorer.fill()
    defaults, peer = scorer.records["defaults"], scorer.records["peer"]
    curves = dict(defaults_average=curve(defaults["points"], "average"),
                  defaults_trained=curve(defaults["points"], "trained"), peer=curve(peer["points"], "trained"))
    summary = dict(target_fid=target, budget=peer_points[-1]["images"], recipe=recipe,
                   overrides=defaults.get("overrides", {}), machine=defaults["machine"],
                   peer_precision=peer["precision"], data=data, seed=defaults["seed"],
                   defaults_precision=defaults["precision"], defaults_date=defaults["date"], peer_date=peer["date"],
                   peer_seconds=first_reaching(curves["peer"], target),
                   defaults_seconds=first_reaching(curves["defaults_average"], target),
                   defaults_trained_seconds=first_reaching(curves["defaults_trained"], target), curves=curves)
    summary["ratio"] = (round(summary["peer_seconds"] / summary["defaults_seconds"], 2)
                        if summary["defaults_seconds"] else None)
    os.makedirs(out_dir, exist_ok=True)
    records.write_json(os.path.join(out_dir, "time-to-fid.json"), summary)
    plot(summary, os.path.join(out_dir, "time-to-fid.png"))
    return summary


def recipe_label(summary: dict) -> str:
    recipe = summary.get("recipe", "defaults")
    return "the defaults" if recipe == "defaults" else recipe


def plot(summary: dict, path: str):
    """FID against training seconds: the defaults (the moving average, and the trained generator) and the peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    side = recipe_label(summary)
    styles = dict(defaults_average=("o-", "tab:blue", 1.0, f"{side} ({summary['defaults_precision']}), "
                                    "moving average (how they draw)"),
                  defaults_trained=("o--", "tab:blue", 0.5, f"{side}, trained generator"),
                  peer=("s-", "tab:orange", 1.0, f"the peer (pytorch/examples DCGAN, {summary['peer_precision']}, "
                        "batch 64)"))
    for name, (style, color, alpha, label) in styles.items():
        points = summary["curves"][name]
        axes.plot([p["seconds"] for p in points], [p["fid"] for p in points], style, color=color, alpha=alpha,
                  label=label)
    axes.axhline(summary["target_fid"], color="gray", linewidth=0.8, linestyle=":")
    axes.text(axes.get_xlim()[1], summary["target_fid"], f" the peer after {summary['budget']:,} images",
              va="bottom", ha="right", color="gray", fontsize=8)
    axes.set_xlabel("seconds of training")
    axes.set_ylabel("FID (2,048 vs 2,048 training faces)")
    axes.set_yscale("log")
    axes.set_title(f"{summary['machine']} ({summary['defaults_date']})", fontsize=8)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


def report(summary: dict) -> str:
    lines = [f"machine: {summary['machine']}",
             f"the peer ({summary['peer_precision']})'s FID after {summary['budget']:,} images: "
             f"{summary['target_fid']:.1f}, reached in {summary['peer_seconds']:.0f} s"]
    side = recipe_label(summary)
    for name, key, curve_name in ((f"{side} (moving average)", "defaults_seconds", "defaults_average"),
                                  (f"{side}, trained generator", "defaults_trained_seconds", "defaults_trained")):
        seconds = summary[key]
        scored = bool(summary["curves"][curve_name])
        lines.append(f"{name}: " + (f"{seconds:.0f} s, {summary['peer_seconds'] / seconds:.2f}× sooner" if seconds
                                    else "never, within the scored points" if scored else "not scored"))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the training faces (img_align_celeba: a folder or zip)")
    parser.add_argument("--peer", help="the peer's training script (for --part peer or all)")
    parser.add_argument("--peer-bf16", action="store_true", help="run the tuned bfloat16 peer (its --bf16)")
    parser.add_argument("--peer-seconds", type=float, help="stop the peer after this many seconds of training "
                        "(3600: the peer's hour); --budget then bounds its images")
    parser.add_argument("--part", choices=("all", "defaults", "peer", "score"), default="all")
    parser.add_argument("--budget", type=int, default=96_000, help="images each side trains on (default 96,000)")
    parser.add_argument("--every", type=int, default=8_000, help="draw the judge's faces every this many images")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="where both sides train and keep their faces")
    parser.add_argument("--out", help="where time-to-fid.json and .png go (docs/speed for the published ones; "
                        "needed by --part score and all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default="defaults", help="the project's side: \"defaults\" (the defaults the long "
                        "budget started from, recipes.LONG_BASE), or a long-budget candidate of experiments/recipes.py "
                        "(joint_reused_statistics: today's defaults), trained into RUNS/<recipe>")
    parser.add_argument("--fill", action="store_true", help="score every point, not only those the answer needs")
    parser.add_argument("--generators", default="average,trained",
                        help="the defaults' generators whose time to the peer's FID is searched for (scored first)")
    add_arguments(parser, ("cache_dir",))
    arguments = parser.parse_args(argv)
    try:
        recipes.long_candidate_settings(arguments.recipe)
    except ValueError as error:
        parser.error(str(error))
    if arguments.part in ("all", "score") and not arguments.out:
        parser.error(f"--part {arguments.part} writes time-to-fid.json: give --out")
    common = dict(runs_dir=arguments.runs, budget=arguments.budget, every=arguments.every, seed=arguments.seed)
    if arguments.part == "defaults":
        run_defaults(arguments.data, cache_dir=arguments.cache_dir, recipe=arguments.recipe, **common)
    elif arguments.part == "peer":
        if not arguments.peer:
            raise SystemExit("--peer: the peer's training script is needed for its part")
        run_peer(arguments.peer, arguments.data, tuned=arguments.peer_bf16, seconds=arguments.peer_seconds, **common)
    elif arguments.part == "all":
        for part in PARTS:  # each in a process of its own; a part already done is kept
            if read_points(arguments.runs, "peer" if part == "peer" else arguments.recipe) is None:
                command = [sys.executable, os.path.abspath(__file__), "--part", part, "--data", arguments.data,
                           "--budget", str(arguments.budget), "--every", str(arguments.every), "--runs",
                           arguments.runs, "--seed", str(arguments.seed), "--recipe", arguments.recipe]
                command += ["--peer", arguments.peer] if arguments.peer else []
                command += ["--peer-bf16"] if arguments.peer_bf16 else []
                command += ["--peer-seconds", str(arguments.peer_seconds)] if arguments.peer_seconds else []
                command += ["--cache-dir", arguments.cache_dir] if arguments.cache_dir else []
                subprocess.run(command, check=True)
    if arguments.part in ("all", "score"):
        print(report(score(arguments.data, arguments.runs, arguments.out, arguments.cache_dir, arguments.fill,
                           arguments.generators.split(","), arguments.recipe)))


if __name__ == "__main__":
    main()
