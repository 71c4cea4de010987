"""Benchmark: how fast faces are decoded, served and trained on this machine. Prints figures; changes nothing but
the record it is asked to write.

    python -m experiments.bench --image-path ../shared/celeba/img_align_celeba
    python -m experiments.bench --precision auto --kernel-size 4 --reuse-fakes true --resident-data false
    python -m experiments.bench --skip-decode --training-only --json docs/speed/bench/zen4-defaults.json
    python -m experiments.bench --skip-decode --training-only --peer ../shared/anchors/torch_dcgan.py
    python -m experiments.bench --skip-decode --training-only --workers 2   # beside: 2 workers of one cluster
    python -m experiments.bench --table docs/speed/bench/*.json      # the records as docs/speed.md's table

Every training setting of Config is a flag (`python -m experiments.bench --help`), with the same default as training.
Each speed is the median of several timed intervals after warm-up (experiments/speed.py). --json keeps the figures
as a record: the machine, the precision, the data, the settings, the seed and the date beside them. --peer runs
the pytorch/examples DCGAN (../shared/anchors/torch_dcgan.py: batch 64, the same 108-pixel crop, 40 steps) in float32,
and with --bf16 (autocast to bfloat16 and channels_last: the tuned peer a PyTorch user writes on a CPU with bfloat16
instructions) where the CPU has them, right after, and prints the defaults' end-to-end speed as × each. Runs
unchanged on a GPU.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import os
import re
import subprocess
import sys

from experiments import records
from facegan.settings_text import add_arguments, config_from_arguments


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)  # any training setting, e.g. --precision auto --kernel-size 4 --reuse-fakes true
    parser.set_defaults(image_path=os.path.join("..", "shared", "celeba", "img_align_celeba"))
    parser.add_argument("--steps-per-interval", type=int, default=4, help="training steps per timed interval")
    parser.add_argument("--repeats", type=int, default=3, help="timed intervals per figure")
    parser.add_argument("--skip-decode", action="store_true", help="skip the first-pass decode figure")
    parser.add_argument("--time-metrics", action="store_true", help="time the quality metrics instead of training")
    parser.add_argument("--layers", action="store_true", help="instead of training: each strided convolution "
                        "alone (forward, to the input, to the filter), by TensorFlow's kernels and by matrix products")
    parser.add_argument("--time-interpolation", action="store_true",
                        help="time restoring a network and a 60-frame GIF")
    parser.add_argument("--training-only", action="store_true",
                        help="stop after the training figures (no parts alone, matrix product or generation)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow's threads within one operation (0: TensorFlow's choice, every core)")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="TensorFlow's operations run at once (0: TensorFlow's choice)")
    parser.add_argument("--peer", help="the peer's script (../shared/anchors/torch_dcgan.py): run it after the "
                        "project's figures, float32 and tuned bfloat16, and print the ratios")
    parser.add_argument("--peer-steps", type=int, default=40, help="the peer's timed steps (default 40)")
    parser.add_argument("--workers", type=int, default=0, help="also train the settings as one process and as this "
                        "many workers of a multi-worker cluster on 127.0.0.1 (tf.distribute), and print both speeds")
    parser.add_argument("--json", help="also write the figures, with what they were measured on, to this file")
    parser.add_argument("--table", nargs="+", metavar="RECORD", help="print these records as a Markdown table "
                        "(measures nothing)")
    return parser


def table(paths) -> str:
    """Bench records as one Markdown table, a row per sitting: what it ran, in which precision and environment,
    how its small maps were convolved (records from before facegan/convolutions.py: TensorFlow's kernels), its
    speeds and, where measured, the peers' and the matrix-product rate's."""
    lines = ["| record | precision | environment | XLA | small maps | step only, images/s | end to end, images/s "
             "| × the float32 peer | × the tuned bfloat16 peer | share of the matrix-product rate |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    machines = []
    for path in paths:
        record = records.read_json(path)
        figures = record["figures"]
        machines.append(record["machine"])
        cell = lambda key, form=".1f": format(figures[key], form) if key in figures else ""  # noqa: E731
        share = (f"{100 * figures['step_gflops'] / figures['matmul_gflops']:.0f}% of {figures['matmul_gflops']:.0f} "
                 "GFLOP/s" if "matmul_gflops" in figures else "")
        environment = ", ".join(f"`{name}={value}`" for name, value in record.get("environment", {}).items()
                                if (name, value) != ("TF_ENABLE_ONEDNN_OPTS", "1")) or "as the project sets it"
        lines.append(f"| [{os.path.basename(path)}]({os.path.relpath(path, 'docs')}) | {figures.get('precision', '')} "
                     f"| {environment} | {'on' if figures.get('xla') else 'off'} "
                     f"| {figures.get('small_maps', 'framework')} | {cell('step_images_per_second')} "
                     f"| {cell('end_to_end_images_per_second')} | {cell('times_peer_float32', '.2f')} "
                     f"| {cell('times_peer_tuned_bfloat16', '.2f')} | {share} |")
    lines += [""] + [f"Machine: {machine}" for machine in dict.fromkeys(machines)]
    return "\n".join(lines) + "\n"


# the environment variables that change what a sitting measures: kept in its record
ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
PEER_SPEED = re.compile(r"torch-dcgan: ([\d.]+) img/s end-to-end")


def run_peer(script: str, data: str, steps: int, bfloat16: bool) -> float:
    """The peer's end-to-end images per second, as it prints them (batch 64, the celeba108 crop, 2 loader workers)."""
    command = [sys.executable, script, "--data", data, "--steps", str(steps), "--batch", "64", "--crop", "celeba108"]
    result = subprocess.run(command + (["--bf16"] if bfloat16 else []), capture_output=True, text=True)
    found = PEER_SPEED.search(result.stdout)
    if result.returncode or not found:
        raise RuntimeError(f"the peer {script} did not report its speed (exit {result.returncode}): "
                           f"{(result.stderr or result.stdout)[-1000:]}")
    return float(found.group(1))


def measure_peers(arguments, config, figures: dict) -> dict:
    """The float32 peer and, on a CPU with bfloat16 instructions, the tuned one; the defaults' speed as × each."""
    from facegan import devices

    peers = {"peer_float32": False}
    if any(flag in devices.cpu_flags() for flag in devices.FAST_BFLOAT16_CPU_FLAGS):
        peers["peer_tuned_bfloat16"] = True
    measured = {}
    for name, bfloat16 in peers.items():
        measured[f"{name}_images_per_second"] = run_peer(arguments.peer, config.data.image_path,
                                                         arguments.peer_steps, bfloat16)
        ratio = figures["end_to_end_images_per_second"] / measured[f"{name}_images_per_second"]
        measured[f"times_{name}"] = ratio
        label = "the tuned bfloat16 peer" if bfloat16 else "the float32 peer"
        print(f"{label}: {measured[f'{name}_images_per_second']:6.1f} images/s end to end; the defaults run "
              f"{ratio:.2f}× {label}")
    return measured


def measure_workers(config, workers: int) -> dict:
    """The run's speed as one process and as `workers` processes of one cluster on this machine (the overhead of
    tf.distribute's all-reduces where they share its cores)."""
    from experiments import speed

    measured = {}
    for count in (1, workers):
        measured[f"training_{count}_process_images_per_second"] = speed.training_by_workers(config, count)
        print(f"training as {count} process{'es' if count > 1 else ''} on this machine: "
              f"{measured[f'training_{count}_process_images_per_second']:6.1f} images/s (the whole run's)")
    return measured


def describe(config, figures: dict) -> str:
    """The training figures' line, naming everything that changes the step's speed."""
    recipe = config.recipe
    return (f"training, step only: {figures['step_images_per_second']:7.1f} images/s ({figures['precision']}, batch "
            f"{config.training.batch_size}, kernel {config.networks.kernel_size}, fakes "
            f"{'reused' if recipe.reuse_fakes else 'drawn twice'}, XLA {'on' if figures['xla'] else 'off'}, small maps "
            f"{figures['small_maps']}, EMA decay "
            f"{recipe.ema_decay}, discriminator norm {config.networks.discriminator_norm}, discriminator batches "
            f"{recipe.discriminator_batches}, flips "
            f"{'on' if recipe.flip_faces else 'off'}, DiffAugment {','.join(recipe.diff_augment) or 'off'}, data "
            f"{'on the device' if figures['resident_data'] else 'streamed'}); {figures['gflop_per_image']:.2f} GFLOP "
            f"per image -> {figures['step_gflops']:.0f} GFLOP/s\n"
            f"training, end to end: {figures['end_to_end_images_per_second']:6.1f} images/s "
            f"({100 * figures['end_to_end_images_per_second'] / figures['step_images_per_second']:.0f}% of step only)")


def bfloat16_cpu(config) -> bool:
    """Whether the networks compute in bfloat16 on a CPU: the matrix product to measure the step against is then
    bfloat16's."""
    from facegan import devices, networks

    return networks.compute_precision(config.networks) == "mixed_bfloat16" and not devices.has_gpu()


def layers_table(layers: list, matmul_gflops: float) -> str:
    """--layers' figures: each convolution's GFLOP/s by TensorFlow's kernels and by matrix products."""
    lines = [f"each strided convolution alone, GFLOP/s (the matrix product 4096²: {matmul_gflops:.0f}); framework "
             "| matmul:", "layer   input → output               forward        to the input   to the filter"]
    for row in layers:
        shapes = f"{'×'.join(map(str, row['input']))} → {'×'.join(map(str, row['output']))}"
        cells = [f"{row[f'framework_{part}_gflops']:5.0f} | {row.get(f'matmul_{part}_gflops', float('nan')):5.0f}"
                 for part in ("forward", "input_gradient", "filter_gradient")]
        lines.append(f"{row['layer']:7s} {shapes:28s} " + "  ".join(cells))
    return "\n".join(lines) + "\n"


def measure(arguments, config) -> dict:
    """Every figure the flags ask for, printed as it is measured."""
    import tensorflow as tf

    from experiments import speed

    figures, faces = speed.loading(config, arguments.skip_decode)
    if "decode_images_per_second" in figures:
        print(f"decode, first pass: {figures['decode_images_per_second']:8.0f} images/s ({figures['faces']} images, "
              f"{os.cpu_count()} threads)")
    print(f"cached load:        {figures['cached_load_images_per_second']:8.0f} images/s")
    if arguments.time_metrics:
        figures.update(speed.metrics(faces.images))
        print("\n".join(f"{name}: {value:.2f}" for name, value in figures.items() if name.endswith("seconds")
                        or name.endswith("per_1000")))
        return figures
    if arguments.layers:
        figures["layers"] = speed.convolution_layers(config)
        figures["matmul_gflops"] = speed.matmul_gflops(dtype=tf.bfloat16 if bfloat16_cpu(config) else tf.float32)
        print(layers_table(figures["layers"], figures["matmul_gflops"]), end="")
        return figures
    if arguments.time_interpolation:
        figures["interpolation_seconds"] = speed.interpolation(config)
        print(f"restore + 60-frame GIF (128×128) and strip: {figures['interpolation_seconds']:5.1f} s")
        return figures
    figures["pipeline_images_per_second"] = speed.pipeline(faces, config.training.batch_size)
    print(f"cached pipeline:    {figures['pipeline_images_per_second']:8.0f} images/s")
    step, gan, fixed_batch = speed.training_step(config, faces, arguments.steps_per_interval, arguments.repeats)
    figures.update(step)
    print(describe(config, figures))
    if arguments.training_only:
        return figures
    figures.update(speed.parts_alone(gan, config, fixed_batch, figures["step_images_per_second"]))
    print("\n".join(f"{name}: {value:.2f}" for name, value in figures.items() if name.endswith("_ms")
                    or name.endswith("_percent") or name == "standing_statistics_seconds"))
    figures["matmul_gflops"] = speed.matmul_gflops(dtype=tf.bfloat16 if bfloat16_cpu(config) else tf.float32)
    print(f"matrix product 4096²: {figures['matmul_gflops']:6.0f} GFLOP/s -> the step runs at "
          f"{100 * figures['step_gflops'] / figures['matmul_gflops']:.0f}% of it")
    figures.update(speed.generation(gan))
    print(f"generation:         {figures['generation_faces_per_second']:8.0f} faces/s (batches of 100)\n"
          f"generation, one face at a time: {figures['single_face_faces_per_second']:6.0f} faces/s")
    return figures


def main(argv=None):
    arguments = make_parser().parse_args(argv)
    if arguments.table:
        print(table(arguments.table), end="")
        return
    config = config_from_arguments(arguments)
    import tensorflow as tf

    from experiments import speed

    if arguments.intra_op_threads:  # 0: TensorFlow's choice, left alone
        tf.config.threading.set_intra_op_parallelism_threads(arguments.intra_op_threads)
    if arguments.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(arguments.inter_op_threads)
    print(speed.machine_line())
    figures = measure(arguments, config)
    if arguments.workers > 1:
        figures.update(measure_workers(config, arguments.workers))
    if arguments.peer and "end_to_end_images_per_second" in figures:
        figures.update(measure_peers(arguments, config, figures))
    if arguments.json:
        from facegan import devices

        records.write_json(arguments.json, dict(
            figures={name: round(value, 3) if isinstance(value, float) else value for name, value in figures.items()},
            precision=devices.resolve_precision(config.networks.precision)[0], data=config.data.image_path,
            settings=config.to_dict(), seed=0, threads=dict(intra_op=arguments.intra_op_threads,
                                                            inter_op=arguments.inter_op_threads),
            environment={name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
            tensorflow=tf.__version__, **records.provenance()))
        print(f"record: {arguments.json}")


if __name__ == "__main__":
    main()
