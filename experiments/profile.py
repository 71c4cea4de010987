"""Where a training step's time goes: the defaults' step traced by TensorFlow's profiler, and the peer's step by
PyTorch's, each split into the same parts, in milliseconds per step. Prints a table; changes nothing but the
record it is asked to write.

    python -m experiments.profile --image-path ../shared/celeba/img_align_celeba
    python -m experiments.profile --image-path ../shared/celeba/img_align_celeba \
        --peer ../shared/anchors/torch_dcgan.py --json docs/speed/profile/zen4-defaults.json

Our step: TensorFlow's profiler traces --steps steps of the step bench times (the faces on the device, warmed up);
every op that ran on TensorFlow's compute threads is put in one part by its type and its name's scope (backward
ops live under gradient_tape/, the optimisers under adam/, the recipe under moving_average/ and diff_augment/).
Two ops can run at once (TensorFlow's inter-op threads), so the parts can add up to more than the step; "no op
running" is the step's wall time not covered by any op (Python, the executor, waiting). The peer's step (the
tuned peer with --bf16, where the CPU has bfloat16 instructions, else float32): torch.profiler over its own script,
each op's self time put in the same parts (its convolution backward is one op: data and weights together), per
step. Profilers slow both steps a little; the shares are what to read.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import glob
import json
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

from experiments import records
from facegan.settings_text import add_arguments, config_from_arguments

PARTS = ("convolution forward", "convolution backward, data", "convolution backward, weights",
         "convolution backward (data and weights)", "dense layers", "batch norm", "casts and layout copies",
         "elementwise, activations and losses", "optimiser updates", "moving average update",
         "DiffAugment and the real batch's gather", "data loading (in the step's thread)", "no op running")
CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def tensorflow_part(name: str, op_type: str) -> str:
    """The part of one TensorFlow op, from its name (scopes) and type (oneDNN's ops carry _MklNative…)."""
    kind = op_type.replace("_MklNative", "").replace("_Mkl", "").replace("Fused", "")
    kind = kind.replace("WithBias", "").replace("Ex", "") if kind.startswith(CONVOLUTIONS) else kind
    scopes = {re.sub(r"_\d+$", "", scope) for scope in name.split("/")[:-1]}  # input_gradient_3 → input_gradient
    backward = name.startswith("gradient_tape/") or "input_gradient" in scopes  # the latter: convolutions.py's
    if name.startswith(("adam/", "adam_")) or kind.startswith("ResourceApply"):
        return "optimiser updates"
    if "moving_average/" in name:
        return "moving average update"
    if "diff_augment/" in name or "real_batch/" in name:
        return "DiffAugment and the real batch's gather"
    if kind.startswith("Conv2DBackpropFilter") or "filter_gradient" in scopes:  # patches and their matrix product
        return "convolution backward, weights"
    if kind in ("Conv2D", "Conv2DBackpropInput") or "matmul_convolution" in scopes:  # a transposed convolution's
        # forward is a BackpropInput; convolutions.py's matrix products (patches or fold included) are convolutions
        return "convolution backward, data" if backward else "convolution forward"
    if kind.startswith("MatMul") or kind.startswith("BatchMatMul"):
        return "dense layers"
    if "BatchNorm" in kind:
        return "batch norm"
    if kind in ("Cast", "Transpose", "Reshape", "Bitcast"):
        return "casts and layout copies"
    return "elementwise, activations and losses"


def _intervals_union(intervals: List[Tuple[int, int]]) -> int:
    covered, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            covered += stop - start
            end = stop
        elif stop > end:
            covered += stop - end
            end = stop
    return covered


def read_trace(folder: str) -> Tuple[Dict[str, float], float, float]:
    """(milliseconds in each part, the traced steps' wall milliseconds, the milliseconds some op ran) of a
    TensorFlow profiler trace in `folder`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0], "rb") as handle:
        space.ParseFromString(handle.read())
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    names = host.event_metadata
    parts, ops, steps = dict.fromkeys(PARTS, 0.0), [], []
    for line in host.lines:
        for event in line.events:
            start = line.timestamp_ns * 1000 + event.offset_ps
            name = names[event.metadata_id].name
            if line.name == "python" and name == "train_step":
                steps.append((start, start + event.duration_ps))
            elif line.name.startswith("tf_Compute") and ":" in name and not name.endswith(":Process"):
                op_name, op_type = name.rsplit(":", 1)
                parts[tensorflow_part(op_name, op_type)] += event.duration_ps / 1e9
                ops.append((start, start + event.duration_ps))
    first, last = min(start for start, _ in steps), max(stop for _, stop in steps)
    busy = _intervals_union([(max(a, first), min(b, last)) for a, b in ops if b > first and a < last])
    return parts, (last - first) / 1e9, busy / 1e9


def profile_ours(config, steps: int) -> dict:
    """The defaults' step, traced: ms per step in each part, and the step's wall ms."""
    import tensorflow as tf

    from experiments import speed

    figures, faces = speed.loading(config, skip_decode=True)
    _, gan, batch = speed.training_step(config, faces, steps_per_interval=2, repeats=1)
    step = tf.function(gan.train_step)  # the step bench times, warmed up again in this function
    for _ in range(3):
        float(step(batch)["generator_loss"])
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        for _ in range(steps):
            float(step(batch)["generator_loss"])
        tf.profiler.experimental.stop()
        parts, wall, busy = read_trace(folder)
    parts["no op running"] = max(0.0, wall - busy)
    return dict(step_ms=wall / steps, parts_ms={part: value / steps for part, value in parts.items() if value})


PEER_PROFILE = """
import json, runpy, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.profiler import profile, ProfilerActivity
script, steps, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.argv = [script] + sys.argv[4:]
updates = []
trace = profile(activities=[ProfilerActivity.CPU])

def after_update(optimizer, args, kwargs):  # two updates (D, then G) end each of the peer's steps
    updates.append(1)
    if len(updates) == 2 * warmup:
        trace.start()
    elif len(updates) == 2 * (warmup + steps):
        trace.stop()

register_optimizer_step_post_hook(after_update)
runpy.run_path(script, run_name="__main__")
print("OPS", json.dumps({event.key: event.self_cpu_time_total for event in trace.key_averages()}))
"""


def torch_part(name: str) -> str:
    """The part of one PyTorch op (its self time)."""
    if name.startswith("enumerate(DataLoader)") or "DataLoader" in name:
        return "data loading (in the step's thread)"
    if "convolution" in name:
        return "convolution backward (data and weights)" if "backward" in name else "convolution forward"
    if "batch_norm" in name:
        return "batch norm"
    if name in ("aten::copy_", "aten::to", "aten::_to_copy", "aten::contiguous", "aten::clone"):
        return "casts and layout copies"
    if name.startswith("aten::_foreach") or name.startswith("Optimizer.") or name in ("aten::addcdiv_", "aten::lerp_"):
        return "optimiser updates"
    if name.startswith("aten::") or name.startswith("autograd::"):
        return "elementwise, activations and losses"
    return ""  # the profiler's own records (ProfilerStep, record_function) hold no work of their own


def profile_peer(script: str, data: str, steps: int, bfloat16: bool) -> dict:
    """The peer's step under torch.profiler (the steps after its warm-up): ms per step in each part, and its
    wall ms as it times itself (unprofiled steps are not run again: the profiler's own cost is in the wall time)."""
    warmup = 3
    command = [sys.executable, "-c", PEER_PROFILE, script, str(steps), str(warmup), "--data", data, "--steps",
               str(steps), "--warmup", str(warmup), "--batch", "64", "--crop", "celeba108"]
    result = subprocess.run(command + (["--bf16"] if bfloat16 else []), capture_output=True, text=True)
    if result.returncode or "OPS" not in result.stdout:
        raise RuntimeError(f"the peer {script} could not be profiled (exit {result.returncode}): "
                           f"{(result.stderr or result.stdout)[-1000:]}")
    ops = json.loads(result.stdout.split("OPS", 1)[1])
    parts = dict.fromkeys(PARTS, 0.0)
    for name, microseconds in ops.items():
        if torch_part(name):
            parts[torch_part(name)] += microseconds / 1000 / steps
    speed_line = result.stdout.split("torch-dcgan:", 1)[1].split("\n", 1)[0]
    images_per_second = float(speed_line.split("img/s")[0])
    return dict(step_ms=64 / images_per_second * 1000, batch_size=64, images_per_second=images_per_second,
                parts_ms={part: value for part, value in parts.items() if value})


def table(profiles: Dict[str, dict]) -> str:
    """The parts as a Markdown table: ms per image in each part (so batches of 100 and 64 compare), and shares."""
    heads = list(profiles)
    lines = ["| part | " + " | ".join(f"{head}: µs per image (share)" for head in heads) + " |",
             "| --- |" + " ---: |" * len(heads)]
    for part in PARTS:
        if not any(part in profile["parts_ms"] for profile in profiles.values()):
            continue
        cells = []
        for profile in profiles.values():
            value = profile["parts_ms"].get(part)
            total = sum(profile["parts_ms"].values())
            per_image = value * 1000 / profile["batch_size"] if value else None
            cells.append(f"{per_image:.0f} ({100 * value / total:.0f}%)" if value else "–")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines.append("| the step's wall time | " + " | ".join(
        f"{profile['step_ms'] * 1000 / profile['batch_size']:.0f}" for profile in profiles.values()) + " |")
    return "\n".join(lines) + "\n"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--traced-steps", type=int, default=10, help="our steps traced (default 10)")
    parser.add_argument("--peer", help="the peer's script (../shared/anchors/torch_dcgan.py): profile it too")
    parser.add_argument("--peer-steps", type=int, default=20, help="the peer's profiled steps (default 20)")
    parser.add_argument("--json", help="also write the profiles, with what they were measured on, to this file")
    return parser


def main(argv=None):
    arguments = make_parser().parse_args(argv)
    config = config_from_arguments(arguments)
    from facegan import devices

    precision = devices.resolve_precision(config.networks.precision)[0]
    profiles = {f"the defaults ({precision})": dict(profile_ours(config, arguments.traced_steps),
                                                    batch_size=config.training.batch_size)}
    if arguments.peer:
        tuned = any(flag in devices.cpu_flags() for flag in devices.FAST_BFLOAT16_CPU_FLAGS)
        name = "the tuned bfloat16 peer" if tuned else "the float32 peer"
        profiles[name] = profile_peer(arguments.peer, config.data.image_path, arguments.peer_steps, tuned)
    print(devices.machine())
    print(table(profiles), end="")
    if arguments.json:
        records.write_json(arguments.json, dict(
            profiles=profiles, precision=precision, data=config.data.image_path, settings=config.to_dict(), seed=0,
            traced_steps=arguments.traced_steps, peer_steps=arguments.peer_steps if arguments.peer else None,
            **records.provenance()))
        print(f"record: {arguments.json}")


if __name__ == "__main__":
    main()
