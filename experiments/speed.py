"""The measurements bench prints: how fast faces are decoded, served, trained on, drawn and scored here. Each
function returns its figures (a speed is the median of several timed intervals after warm-up); bench.py prints
them and keeps them as a record."""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

import celeba_utils
from facegan import augment, convolutions, devices, drawing, latent, networks, runs, training
from facegan.config import Config
from facegan.gan import DCGAN
from facegan.metrics import inception, maths


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
    """The matrix-product rate of this machine in `dtype`: what a training step's rate is measured against."""
    a = tf.cast(tf.random.normal((size, size), dtype=tf.float32), dtype)
    product = tf.function(lambda x: tf.linalg.matmul(x, x))
    return median_rate(lambda: product(a).numpy(), 2 * size ** 3, calls=3, repeats=3) / 1e9


def convolution_layers(config: Config, calls: int = 5, repeats: int = 3) -> list:
    """Each strided convolution of the two networks alone, at the batch size and in the precision the networks
    compute in: its forward pass, its gradient to the input and its gradient to the filter, in GFLOP/s, by
    TensorFlow's kernels ("framework") and by facegan/convolutions.py's matrix products ("matmul"), whatever
    small_map_convolutions says. Each of the three does the same multiply-adds as the forward pass."""
    gan = DCGAN.from_config(config)
    dtype = tf.as_dtype(keras.mixed_precision.DTypePolicy(networks.compute_precision(config.networks)).compute_dtype)
    batch, rows = config.training.batch_size, []
    layers = [layer for model in (gan.discriminator, gan.generator) for layer in model.layers
              if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    for layer in layers:
        transposed = isinstance(layer, keras.layers.Conv2DTranspose)
        big, small = (layer.output.shape, layer.input.shape) if transposed else (layer.input.shape, layer.output.shape)
        kernel = tf.cast(layer.kernel, dtype)
        large_map = tf.cast(tf.random.normal((batch, *big[1:])), dtype)
        small_map = tf.cast(tf.random.normal((batch, *small[1:])), dtype)
        flops = 2 * batch * small[1] * small[2] * int(np.prod(kernel.shape))
        row = dict(layer=layer.name, input=list(layer.input.shape[1:]), output=list(layer.output.shape[1:]))
        paths = [("framework", False)] + ([("matmul", True)] if kernel.shape[0] % 2 == 0 else [])  # even kernels
        for path, matmul in paths:
            forward, backward = convolutions.convolution, convolutions.transposed_convolution
            if transposed:  # its forward pass is a convolution's gradient to the input, and the reverse
                forward, backward = backward, forward
            if matmul:
                weights = lambda: convolutions.filter_gradient(large_map, small_map, kernel.shape[0])  # noqa: E731
            else:
                weights = lambda: tf.raw_ops.Conv2DBackpropFilter(  # noqa: E731
                    input=large_map, filter_sizes=kernel.shape, out_backprop=small_map, strides=[1, 2, 2, 1],
                    padding="SAME")
            works = dict(forward=(forward, small_map if transposed else large_map),
                         input_gradient=(backward, large_map if transposed else small_map))
            for name, (function, inputs) in works.items():
                compiled = tf.function(lambda: function(inputs, kernel, matmul))
                row[f"{path}_{name}_gflops"] = median_rate(lambda: compiled().numpy(), flops, calls, repeats) / 1e9
            compiled = tf.function(weights)
            row[f"{path}_filter_gradient_gflops"] = median_rate(lambda: compiled().numpy(), flops, calls, repeats) / 1e9
        rows.append(row)
    return rows


def loading(config: Config, skip_decode: bool):
    """(figures, faces): the first-pass decode rate (unless skip_decode: the usual warm cache) and the cached load."""
    figures = {}
    with tempfile.TemporaryDirectory() as fresh_cache:
        cache_dir = None if skip_decode else fresh_cache
        if not skip_decode:
            start = time.perf_counter()
            faces = celeba_utils.load_faces(config.data.image_path, cache_dir=cache_dir, progress=False)
            figures["decode_images_per_second"] = len(faces.images) / (time.perf_counter() - start)
        start = time.perf_counter()
        faces = celeba_utils.load_faces(config.data.image_path, cache_dir=cache_dir, progress=False)
        figures["cached_load_images_per_second"] = len(faces.images) / (time.perf_counter() - start)
    figures["faces"] = len(faces.images)
    return figures, faces


def pipeline(faces: celeba_utils.Faces, batch_size: int) -> float:
    """Images per second the cached tf.data stream serves, alone."""
    iterator = iter(celeba_utils.make_dataset(faces.images, batch_size, seed=0))
    return median_rate(lambda: next(iterator), batch_size, calls=50, repeats=5)


def training_step(config: Config, faces: celeba_utils.Faces, steps_per_interval: int, repeats: int):
    """(figures, gan, a batch as the step takes it): the step alone on one batch and end to end on the stream, in
    images per second, with the work per image and the rate it reaches. XLA and resident data are decided as
    training decides them."""
    jit_compile, resident = training.uses_xla(config), training.wants_resident_data(config)
    gan = DCGAN.from_config(config)
    gan.compile(jit_compile=jit_compile)
    step = tf.function(gan.train_step, jit_compile=jit_compile)
    if resident:  # the stream carries indices; the step gathers the faces on the device
        resident = gan.keep_on_device(faces.images)
    stream = iter(celeba_utils.make_dataset(faces.images, config.training.batch_size, seed=0, indices_only=resident))
    fixed_batch = next(stream)  # step only: the same batch again and again, already where the step wants it
    timing = dict(calls=steps_per_interval, repeats=repeats)
    step_rate = median_rate(lambda: float(step(fixed_batch)["generator_loss"]), config.training.batch_size, **timing)
    end_to_end = median_rate(lambda: float(step(next(stream))["generator_loss"]), config.training.batch_size,
                             **timing)
    flops = training_flops_per_image(gan)
    precision = networks.compute_precision(config.networks)
    matmul = networks.matmul_small_maps(config.networks, keras.mixed_precision.DTypePolicy(precision))
    return dict(step_images_per_second=step_rate, end_to_end_images_per_second=end_to_end,
                gflop_per_image=flops / 1e9, step_gflops=step_rate * flops / 1e9, precision=precision,
                xla=jit_compile, resident_data=bool(resident),
                small_maps="matmul" if matmul else "framework"), gan, fixed_batch


def _share_of_step(per_second: float, calls_per_step: int, step_rate: float, batch_size: int) -> float:
    """A part's share of a training step, in percent, from its calls per second and the step's images per second."""
    return 100 * calls_per_step * step_rate / (batch_size * per_second)


def parts_alone(gan: DCGAN, config: Config, fixed_batch, step_rate: float) -> dict:
    """Milliseconds of each part of the recipe that is on, alone, and its share of a training step."""
    batch, recipe = config.training.batch_size, config.recipe
    parts = {}
    if gan.ema_generator is not None:
        parts["ema_update"] = (median_rate(tf.function(gan.update_ema), 1, calls=20, repeats=3), 1)
    if config.networks.discriminator_norm == "spectral":
        normalized = [layer for layer in gan.discriminator.layers if isinstance(layer, networks.SpectralNorm)]
        normalize = tf.function(lambda: [layer.normalized_kernel(training=True) for layer in normalized])
        parts["spectral_norm"] = (median_rate(normalize, 1, calls=20, repeats=3), 3)
    if recipe.flip_faces:
        flip = tf.function(lambda: augment.mirror_randomly(gan.real_batch(fixed_batch), gan.step_noise()))
        parts["flips"] = (median_rate(flip, 1, calls=20, repeats=3), 1)
    if recipe.diff_augment:  # three batches augmented per step: real and fake for D, fake for G
        augmented = tf.function(lambda: augment.diff_augment(gan.real_batch(fixed_batch), recipe.diff_augment,
                                                             gan.step_noise()))
        parts["diff_augment"] = (median_rate(augmented, 1, calls=20, repeats=3), 3)
    figures = {f"{name}_ms": 1000 / per_second for name, (per_second, _) in parts.items()}
    figures.update({f"{name}_share_of_step_percent": _share_of_step(per_second, calls, step_rate, batch)
                    for name, (per_second, calls) in parts.items()})
    if gan.ema_generator is not None:
        figures["standing_statistics_seconds"] = 1 / median_rate(gan.refresh_average_statistics, 1, calls=1,
                                                                 repeats=3)
    return figures


def generation(gan: DCGAN) -> dict:
    """Faces per second drawn in batches of 100, and one at a time (as a slider redraws a face)."""
    generator = drawing.ready_generator(gan)
    z = np.random.default_rng(0).standard_normal((1000, generator.z_dim)).astype(np.float32)
    return dict(generation_faces_per_second=median_rate(lambda: drawing.draw_faces(generator, z), 1000, calls=1,
                                                        repeats=3),
                single_face_faces_per_second=median_rate(lambda: drawing.draw_faces(generator, z[:1]), 1, calls=50,
                                                         repeats=3))


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def metrics(images: np.ndarray) -> dict:
    """Seconds for each metric (SWD and memorisation on 1,000 vs 1,000 faces; Inception per 1,000 faces)."""
    first, second = images[:1000], images[1000:2000]
    figures = dict(swd_seconds=_seconds(lambda: maths.swd(first, second)),
                   memorisation_seconds=_seconds(lambda: maths.memorisation(first, images[2000:], second)))
    try:
        inception.inception_features(first[:10])
    except ImportError:
        return figures  # FID/KID: the extra is not installed
    features = []
    figures["inception_seconds_per_1000"] = 10 * _seconds(lambda: features.append(
        inception.inception_features(first[:100])))
    features = np.concatenate(features * 10) + np.random.default_rng(0).normal(0, 0.01, (1000, 2048))
    figures["fid_from_features_seconds"] = _seconds(lambda: maths.fid_from_features(features, features[::-1] * 1.01))
    figures["kid_from_features_seconds"] = _seconds(lambda: maths.kid_from_features(features, features[::-1] * 1.01))
    return figures


def interpolation(config: Config) -> float:
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
        return time.perf_counter() - start


TRAIN_ONE_PROCESS = """
import json, sys
import facegan
from facegan import training
training.train(show=False, **json.loads(sys.argv[1]))
"""


def free_ports(count: int) -> list:
    """`count` TCP ports free on 127.0.0.1 at this moment: the addresses of a cluster's workers on one machine."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def start_process(code: str, settings: dict, arguments=(), environment: Optional[dict] = None) -> subprocess.Popen:
    """One Python process running `code` with argv [json of settings, *arguments], its output captured."""
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(settings), *map(str, arguments)],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_workers(settings: dict, count: int, code: str = TRAIN_ONE_PROCESS, arguments=(), scratch=None) -> list:
    """`count` processes of one multi-worker cluster on 127.0.0.1, each running `code` with its own TF_CONFIG and
    argv [json of settings, *arguments] ("{index}" in an argument: the worker's index); returns the Popen objects
    (worker 0, the chief, first). `scratch`: the temporary folder (TMPDIR) the other workers write into, which a
    killed worker leaves behind."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    started = []
    for index in range(count):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        if scratch is not None:
            environment["TMPDIR"] = str(scratch)
        started.append(start_process(code, settings, [str(each).format(index=index) for each in arguments],
                                     environment))
    return started


def training_by_workers(config: Config, workers: int, steps: int = 40) -> float:
    """Images per second of a whole run (every worker's share together), `steps` steps of config trained as
    training.train trains them by `workers` processes of one multi-worker cluster on 127.0.0.1 (1: one process,
    strategy "default"): the median of the speeds the chief logged over the last half of the steps."""
    with tempfile.TemporaryDirectory() as folder:
        settings = dict(config.settings(), steps=steps, sample_every=10 * steps, checkpoint_every=10 * steps,
                        checkpoint_dir=os.path.join(folder, "my_net"), sample_dir=os.path.join(folder, "imgs"),
                        strategy="multi_worker" if workers > 1 else "default")
        processes = (start_workers(settings, workers) if workers > 1
                     else [start_process(TRAIN_ONE_PROCESS, settings)])
        for process in processes:
            _, err = process.communicate()
            if process.returncode:
                raise RuntimeError(f"a training process of the {workers}-process sitting failed: {err[-2000:]}")
        speeds = [row["images_per_second"] for row in runs.read_losses(settings["checkpoint_dir"])]
    return statistics.median(speeds[len(speeds) // 2:])


def machine_line() -> str:
    return f"device: {devices.setup_devices()}; {devices.machine()}; TensorFlow {tf.__version__}"
