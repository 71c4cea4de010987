"""Benchmark: how fast faces are decoded, served and trained on this machine. Prints figures; changes nothing.

    python -m experiments.bench --image-path ../shared/celeba/img_align_celeba
    python -m experiments.bench --precision auto --kernel-size 4 --reuse-fakes true --resident-data false

Every training setting of Config is a flag (`python -m experiments.bench --help`), with the same default as training.

Each speed is the median of several timed intervals after warm-up. Runs unchanged on a GPU.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import celeba_utils  # noqa: E402
from facegan import augment, networks  # noqa: E402
from facegan.config import Config, add_arguments, config_from_arguments  # noqa: E402
from facegan.gan import DCGAN  # noqa: E402
from facegan import devices  # noqa: E402
from facegan import drawing  # noqa: E402
from facegan import latent  # noqa: E402
from facegan.metrics import inception, maths  # noqa: E402
from facegan import runs  # noqa: E402


def median_rate(run_once, items_per_call: int, calls: int, repeats: int, warmup: int = 1) -> float:
    """items per second: the median over `repeats` intervals of `calls` calls each, after `warmup` calls."""
    for _ in range(warmup):
        run_once()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run_once()
        rates.append(items_per_call * calls / (time.perf_counter() - start))
    return statistics.median(rates)


def forward_flops(model) -> int:
    """Multiply-adds × 2 of a network's dense, convolution and transposed-convolution layers for one image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            height, width, channels = layer.output.shape[1:]
            total += 2 * height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            height, width, _ = layer.input.shape[1:]
            total += 2 * height * width * int(np.prod(layer.kernel.shape))
    return total


def training_flops_per_image(gan) -> int:
    """One alternating step per image: the D step runs G forward and D forward and backward on a real and a fake
    image; the G step runs G and D forward, D backward to its input and G backward. Backward ≈ 2 × forward."""
    generator, discriminator = forward_flops(gan.generator), forward_flops(gan.discriminator)
    d_step = generator + 2 * discriminator + 2 * 2 * discriminator
    g_step = generator + discriminator + discriminator + 2 * generator
    if gan.recipe.reuse_fakes:  # the G step reuses the D step's fakes: no second generator forward
        g_step -= generator
    return d_step + g_step


def matmul_gflops(size: int = 4096, dtype=tf.float32) -> float:
    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda x: tf.linalg.matmul(x, x))
    rate = median_rate(lambda: product(a).numpy(), 2 * size ** 3, calls=3, repeats=3)
    return rate / 1e9


def bench_metrics(images: np.ndarray):
    """Seconds per 1,000 images for each metric (SWD and memorisation on 1,000 vs 1,000; Inception on 100)."""


    first, second = images[:1000], images[1000:2000]
    start = time.perf_counter()
    maths.swd(first, second)
    print(f"SWD, 1,000 vs 1,000 faces:          {time.perf_counter() - start:6.1f} s")
    start = time.perf_counter()
    maths.memorisation(first, images[2000:], second)
    print(f"memorisation, 1,000 vs {len(images) - 2000} training faces: {time.perf_counter() - start:6.1f} s")
    try:
        inception.inception_features(first[:10])
    except ImportError as error:
        print(f"FID/KID: skipped ({error})")
        return
    start = time.perf_counter()
    features = inception.inception_features(first[:100])
    print(f"Inception features:                 {10 * (time.perf_counter() - start):6.1f} s per 1,000 faces")
    features = np.concatenate([features] * 10) + np.random.default_rng(0).normal(0, 0.01, (1000, 2048))
    start = time.perf_counter()
    maths.fid_from_features(features, features[::-1] * 1.01)
    print(f"FID from features (2048-d):         {time.perf_counter() - start:6.1f} s")
    start = time.perf_counter()
    maths.kid_from_features(features, features[::-1] * 1.01)
    print(f"KID from features (100 subsets):    {time.perf_counter() - start:6.1f} s")


def bench_interpolation(config: Config):
    """Seconds to restore a default-size network from its folder and write a 60-frame GIF (and its strip)."""


    with tempfile.TemporaryDirectory() as folder:
        run = config.replace(checkpoint_dir=os.path.join(folder, "my_net"))
        gan = DCGAN.from_config(run)
        os.makedirs(run.outputs.checkpoint_dir)
        runs.write_config(run)
        runs.checkpoint_manager(gan, run).save(checkpoint_number=0)
        start = time.perf_counter()
        restored, _ = runs.load_gan(run.outputs.checkpoint_dir)
        latent.interpolate(drawing.ready_generator(restored), [[0, 0], [9, 0]], frames=60, upscale_factor=2,
                           gif_path=os.path.join(folder, "test.gif"), strip_path=os.path.join(folder, "examples.png"))
        print(f"restore + 60-frame GIF (128×128) and strip: {time.perf_counter() - start:5.1f} s")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)  # any training setting, e.g. --precision auto --kernel-size 4 --reuse-fakes true
    parser.set_defaults(image_path=os.path.join("..", "shared", "celeba", "img_align_celeba"))
    parser.add_argument("--steps-per-interval", type=int, default=4, help="training steps per timed interval")
    parser.add_argument("--repeats", type=int, default=3, help="timed intervals per figure")
    parser.add_argument("--skip-decode", action="store_true", help="skip the first-pass decode figure")
    parser.add_argument("--time-metrics", action="store_true", help="time the quality metrics instead of training")
    parser.add_argument("--time-interpolation", action="store_true",
                        help="time restoring a network and a 60-frame GIF")
    parser.add_argument("--training-only", action="store_true",
                        help="stop after the training figures (no parts alone, matrix product or generation)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="TensorFlow's threads within one operation (0: TensorFlow's choice, every core)")
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="TensorFlow's operations run at once (0: TensorFlow's choice)")
    return parser


def main():
    arguments = make_parser().parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(arguments.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(arguments.inter_op_threads)

    device = devices.setup_devices()
    gpus = tf.config.list_physical_devices("GPU")
    print(f"device: {device}; {devices.machine()}; TensorFlow {tf.__version__}")
    config = config_from_arguments(arguments)
    resident = config.devices.resident_data is not False  # as training decides it
    jit_compile = config.devices.jit_compile if config.devices.jit_compile is not None else devices.has_gpu()

    with tempfile.TemporaryDirectory() as fresh_cache:
        cache_dir = None if arguments.skip_decode else fresh_cache  # --skip-decode: the usual, warm cache
        if not arguments.skip_decode:
            start = time.perf_counter()
            faces = celeba_utils.load_faces(config.data.image_path, cache_dir=cache_dir, progress=False)
            seconds = time.perf_counter() - start
            print(f"decode, first pass: {len(faces.images) / seconds:8.0f} images/s "
                  f"({len(faces.images)} images in {seconds:.1f} s, {os.cpu_count()} threads)")
        start = time.perf_counter()
        faces = celeba_utils.load_faces(config.data.image_path, cache_dir=cache_dir, progress=False)
        print(f"cached load:        {len(faces.images) / (time.perf_counter() - start):8.0f} images/s")

    if arguments.time_metrics:
        bench_metrics(faces.images)
        return
    if arguments.time_interpolation:
        bench_interpolation(config)
        return
    iterator = iter(celeba_utils.make_dataset(faces.images, config.training.batch_size, seed=0))
    rate = median_rate(lambda: next(iterator), config.training.batch_size, calls=50, repeats=5)
    print(f"cached pipeline:    {rate:8.0f} images/s (batches of {config.training.batch_size})")

    gan = DCGAN.from_config(config)
    gan.compile(jit_compile=jit_compile)
    step = tf.function(gan.train_step, jit_compile=jit_compile)
    stream = iterator
    if resident:  # the stream carries indices; the step gathers the faces on the device
        gan.keep_on_device(faces.images)
        stream = iter(celeba_utils.make_dataset(faces.images, config.training.batch_size, seed=0, indices_only=True))
    fixed_batch = next(stream)  # step only: the same batch again and again, already where the step wants it

    def step_only():
        float(step(fixed_batch)["generator_loss"])

    def end_to_end():
        float(step(next(stream))["generator_loss"])

    timing = dict(calls=arguments.steps_per_interval, repeats=arguments.repeats)
    step_rate = median_rate(step_only, config.training.batch_size, **timing)
    pipeline_rate = median_rate(end_to_end, config.training.batch_size, **timing)
    flops = training_flops_per_image(gan)
    achieved = step_rate * flops / 1e9
    precision = networks.compute_precision(config.networks)
    matmul = matmul_gflops(dtype=tf.bfloat16 if precision == "mixed_bfloat16" and not gpus else tf.float32)
    print(f"training, step only: {step_rate:7.1f} images/s ({precision}, batch {config.training.batch_size}, "
          f"kernel {config.networks.kernel_size}, fakes {'reused' if config.recipe.reuse_fakes else 'drawn twice'}, "
          f"XLA {'on' if jit_compile else 'off'}, EMA decay {config.recipe.ema_decay}, discriminator norm "
          f"{config.networks.discriminator_norm}, flips {'on' if config.recipe.flip_faces else 'off'}, DiffAugment "
          f"{','.join(config.recipe.diff_augment) or 'off'}, data "
          f"{'on the device' if resident else 'streamed'}); "
          f"{flops / 1e9:.2f} GFLOP per image -> {achieved:.0f} GFLOP/s")
    print(f"training, end to end: {pipeline_rate:6.1f} images/s ({100 * pipeline_rate / step_rate:.0f}% of step only)")
    print(f"threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'auto'}")
    if arguments.training_only:
        return
    if gan.ema_generator is not None:
        update = tf.function(gan.update_ema)
        updates_per_second = median_rate(update, 1, calls=20, repeats=3)
        print(f"EMA update alone:   {1000 / updates_per_second:8.2f} ms per step "
              f"({100 * step_rate / (config.training.batch_size * updates_per_second):.2f}% of a training step)")
        refresh_seconds = 1 / median_rate(gan.refresh_average_statistics, 1, calls=1, repeats=3)
        print(f"standing statistics: {refresh_seconds:6.2f} s per refresh, before each grid, measurement and load "
              f"({refresh_seconds * step_rate / config.training.batch_size:.1f}% of 100 steps: one grid's worth at "
              "the default)")
    if config.networks.discriminator_norm == "spectral":
        normalized = [layer for layer in gan.discriminator.layers if isinstance(layer, networks.SpectralNorm)]
        normalize = tf.function(lambda: [layer.normalized_kernel(training=True) for layer in normalized])
        per_second = median_rate(normalize, 1, calls=20, repeats=3)
        print(f"spectral norm alone: {1000 / per_second:7.2f} ms per discriminator call "
              f"({300 * step_rate / (config.training.batch_size * per_second):.2f}% of a training step: 3 calls)")
    if config.recipe.flip_faces:
        flip = tf.function(lambda: augment.mirror_randomly(gan.real_batch(fixed_batch), gan.noise))
        per_second = median_rate(flip, 1, calls=20, repeats=3)
        print(f"flips alone:        {1000 / per_second:8.2f} ms per step "
              f"({100 * step_rate / (config.training.batch_size * per_second):.2f}% of a training step)")
    if config.recipe.diff_augment:  # three batches augmented per step: real and fake for D, fake for G
        augmented = tf.function(lambda: augment.diff_augment(gan.real_batch(fixed_batch), config.recipe.diff_augment,
                                                             gan.noise))
        per_second = median_rate(augmented, 1, calls=20, repeats=3)
        print(f"DiffAugment alone:  {1000 / per_second:8.2f} ms per batch "
              f"({300 * step_rate / (config.training.batch_size * per_second):.2f}% of a training step: 3 batches)")
    print(f"matrix product 4096²: {matmul:6.0f} GFLOP/s -> the step runs at {100 * achieved / matmul:.0f}% of it")

    generator = drawing.ready_generator(gan)
    z = np.random.default_rng(0).standard_normal((1000, config.networks.z_dim)).astype(np.float32)
    rate = median_rate(lambda: drawing.draw_faces(generator, z), 1000, calls=1, repeats=3)
    print(f"generation:         {rate:8.0f} faces/s (batches of 100)")
    single = median_rate(lambda: drawing.draw_faces(generator, z[:1]), 1, calls=50, repeats=3)
    print(f"generation, one face at a time: {single:6.0f} faces/s (as a slider redraws a face)")


if __name__ == "__main__":
    main()
