"""Does one seed train the same networks twice on this machine? Under each condition the same settings train from the
same seed twice, each time in a fresh process, and the record gives the first step whose logged losses differ
(None: the same to the last step) and each run's speed: what reproducing a run costs.

    python -m experiments.determinism --image-path ../shared/celeba/img_align_celeba --steps 40 \
        --json docs/long-recipe/determinism-conditions.json

Conditions: the settings as given; one inter-op thread (TensorFlow runs one op at a time); one thread in all
(one op at a time, each on one core); TensorFlow's
deterministic ops (tf.config.experimental.enable_op_determinism); float32 instead of the precision chosen; and
oneDNN's kernels off (TF_ENABLE_ONEDNN_OPTS=0).
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import json
import os
import statistics
import tempfile
from typing import Optional, Sequence

from experiments import records
from experiments.speed import TRAIN_ONE_PROCESS, start_process
from facegan import runs
from facegan.config import Config
from facegan.settings_text import add_arguments, config_from_arguments

# Each condition: what the training process does before it trains ("inter_op_threads", "deterministic"), the
# settings it changes and the environment it adds.
CONDITIONS = {
    "as given": {},
    "one inter-op thread": dict(inter_op_threads=1),
    "one thread": dict(inter_op_threads=1, intra_op_threads=1),  # every op alone, on one core
    "deterministic ops": dict(deterministic=True),
    "float32": dict(settings=dict(precision="float32")),
    "oneDNN off": dict(environment=dict(TF_ENABLE_ONEDNN_OPTS="0")),
}

# Run before speed.TRAIN_ONE_PROCESS trains: the condition (argv[2]) set before anything runs in TensorFlow.
SET_CONDITION = """
import json, sys
import facegan
import tensorflow as tf
condition = json.loads(sys.argv[2])
if condition.get("inter_op_threads"):
    tf.config.threading.set_inter_op_parallelism_threads(condition["inter_op_threads"])
if condition.get("intra_op_threads"):
    tf.config.threading.set_intra_op_parallelism_threads(condition["intra_op_threads"])
if condition.get("deterministic"):
    tf.config.experimental.enable_op_determinism()
"""


def train_once(config: Config, condition: dict, folder: str) -> tuple:
    """Train `config` under `condition` in a fresh process into `folder`: its logged losses.csv rows, and its start
    record (the machine as the process saw it and the precision it trained in)."""
    settings = dict(config.settings(), **condition.get("settings", {}), checkpoint_dir=os.path.join(folder, "my_net"),
                    sample_dir=os.path.join(folder, "imgs"), sample_every=10 * config.training.steps,
                    checkpoint_every=10 * config.training.steps, fresh=False)
    environment = dict(os.environ, **condition.get("environment", {}))
    process = start_process(SET_CONDITION + TRAIN_ONE_PROCESS, settings, [json.dumps(condition)], environment)
    _, errors = process.communicate()
    if process.returncode:
        raise RuntimeError(f"training under {condition} failed (exit {process.returncode}): {errors[-2000:]}")
    return runs.read_losses(settings["checkpoint_dir"]), runs.read_starts(settings["checkpoint_dir"])[-1]


def first_difference(first: Sequence[dict], second: Sequence[dict]) -> Optional[int]:
    """The first step whose discriminator or generator loss differs between two runs' logs (None: none does)."""
    for one, other in zip(first, second):
        if (one["discriminator_loss"], one["generator_loss"]) != (other["discriminator_loss"],
                                                                  other["generator_loss"]):
            return one["step"]
    if len(first) != len(second):
        raise ValueError(f"the runs logged {len(first)} and {len(second)} steps: they did not train alike")
    return None


def measure(config: Config, conditions: Sequence[str], show: bool = True) -> list:
    """Each condition's pair of runs: the first step that differs, the losses there and each run's median speed."""
    rows = []
    for name in conditions:
        condition = CONDITIONS[name]
        pair = []
        for _ in range(2):
            with tempfile.TemporaryDirectory() as folder:
                losses, start = train_once(config, condition, folder)
                pair.append(losses)
        step = first_difference(*pair)
        at = [next(row for row in losses if row["step"] == step) for losses in pair] if step else []
        speeds = [statistics.median(row["images_per_second"] for row in losses[len(losses) // 2:])
                  for losses in pair]
        rows.append(dict(condition=name, steps=config.training.steps, precision=start["precision"],
                         machine=start["machine"], first_different_step=step,
                         losses_there=[[row["discriminator_loss"], row["generator_loss"]] for row in at],
                         images_per_second=[round(speed, 1) for speed in speeds]))
        if show:
            print(f"{name:20s} first different step: {step}; images/s {speeds[0]:.1f}, {speeds[1]:.1f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)  # any training setting: --image-path, --steps, --precision …
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma-separated, among: {', '.join(CONDITIONS)}")
    parser.add_argument("--json", help="add the rows, with the machine, the settings and the date, to this file's")
    arguments = parser.parse_args(argv)
    conditions = [name for name in arguments.conditions.split(",") if name]
    unknown = [name for name in conditions if name not in CONDITIONS]
    if unknown:
        parser.error(f"unknown conditions {unknown}: choose among {', '.join(CONDITIONS)}")
    config = config_from_arguments(arguments)
    rows = measure(config, conditions)
    if arguments.json:
        earlier = records.read_json(arguments.json, {}).get("rows", [])
        records.write_json(arguments.json, dict(
            what="each condition: two trainings of the same settings and seed in fresh processes, the first logged "
                 "step whose losses differ (null: none) and each run's median images/s over its second half",
            settings=config.settings(), rows=earlier + rows, **records.provenance()))


if __name__ == "__main__":
    main()
