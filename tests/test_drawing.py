"""drawing: the network that draws and the one function that draws faces, in both modes, by vectors or seeds."""

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

from facegan.images import to_uint8
from facegan import drawing, networks, runs
from facegan.config import Config
from facegan.drawing import ReadyGenerator, draw_faces
from facegan.gan import DCGAN
from conftest import TINY


@pytest.fixture(scope="module")
def trained_gan():
    config = Config(**TINY)
    gan = DCGAN.from_config(config)
    for _ in range(3):  # move the batch-norm statistics away from their initial values
        gan.train_step(tf.random.uniform((config.training.batch_size, 64, 64, 3), -1, 1))
    return gan


def test_the_same_z_gives_the_same_face_alone_and_in_any_batch(trained_gan):
    generator = drawing.ready_generator(trained_gan, use_average=False)
    z = np.random.default_rng(2).standard_normal((100, 16)).astype(np.float32)
    alone = draw_faces(generator, z[:1])
    in_seven = draw_faces(generator, z[:7], batch_size=7)
    in_hundred = draw_faces(generator, z)
    assert in_hundred.shape == (100, 64, 64, 3) and in_hundred.dtype == np.uint8
    assert np.abs(alone[0].astype(int) - in_hundred[0]).max() <= 1  # to float tolerance, after rounding to uint8
    assert np.abs(in_seven.astype(int) - in_hundred[:7]).max() <= 1
    np.testing.assert_array_equal(draw_faces(generator, z, batch_size=30), in_hundred)
    in_training_mode = to_uint8(trained_gan.generator(z, training=True))  # what the seed did
    assert np.abs(in_training_mode[0].astype(int) - in_hundred[0]).max() > 1


def test_seeds_draw_the_faces_of_their_vectors(trained_gan):
    generator = drawing.ready_generator(trained_gan)
    by_seed = draw_faces(generator, seeds=[1, 2, 1])
    assert by_seed.shape == (3, 64, 64, 3) and np.array_equal(by_seed[0], by_seed[2])
    np.testing.assert_array_equal(by_seed, draw_faces(generator, drawing.seed_vectors([1, 2, 1], 16)))
    assert draw_faces(generator, seeds=[]).shape == (0, 64, 64, 3)


def test_pad_mode_pads_to_the_batch_with_random_vectors_and_keeps_moving_statistics(trained_gan):
    generator = drawing.ready_generator(trained_gan, use_average=False)
    network = generator.network
    z = np.random.default_rng(3).standard_normal((10, 16)).astype(np.float32)
    padded = drawing.pad_batch(z, 100, seed=0)
    assert padded.shape == (100, 16) and np.array_equal(padded[:10], z)
    statistics = [v.numpy().copy() for v in network.non_trainable_variables]
    frames = draw_faces(generator, z, mode="pad", batch_size=100, seed=0)
    assert all(np.array_equal(v.numpy(), s) for v, s in zip(network.non_trainable_variables, statistics))
    expected = to_uint8(network(tf.constant(padded), training=True)[:10])
    np.testing.assert_array_equal(frames, expected)  # the seed's recipe: 90 random vectors beside the 10
    other_padding = draw_faces(generator, z, mode="pad", batch_size=100, seed=1)
    assert not np.array_equal(frames, other_padding)  # the batch's other members change the faces


def test_the_average_is_the_network_that_draws_and_its_statistics_are_measured_when_it_is_made(trained_gan):
    for average in trained_gan.ema_generator.non_trainable_weights:
        average.assign(tf.zeros_like(average))  # statistics that belong to no weights
    generator = drawing.ready_generator(trained_gan)
    assert generator.network is trained_gan.ema_generator and generator.name == "average"
    assert all(float(tf.reduce_max(tf.abs(weight))) > 0 for weight in generator.network.non_trainable_weights
               if "variance" in weight.path)  # measured again on its own faces
    np.testing.assert_array_equal(generator.grid_latents, trained_gan.grid_latents.numpy())
    trained = drawing.ready_generator(trained_gan, use_average=False)
    assert trained.network is trained_gan.generator and trained.name == "trained"
    without = DCGAN.from_config(Config(ema_decay=0, **TINY))
    assert drawing.ready_generator(without).network is without.generator  # no average: the trained one draws


def test_a_saved_run_hands_out_its_generator_ready(tmp_path, trained_gan):
    config = Config(checkpoint_dir=str(tmp_path / "my_net"), **TINY)
    (tmp_path / "my_net").mkdir()
    runs.write_config(config)
    runs.checkpoint_manager(trained_gan, config).save(checkpoint_number=3)
    loaded = drawing.load_generator(str(tmp_path / "my_net"))
    expected = draw_faces(drawing.ready_generator(trained_gan), seeds=range(4))
    np.testing.assert_array_equal(draw_faces(loaded, seeds=range(4)), expected)


@pytest.mark.parametrize("call, message", [
    (lambda generator: draw_faces(generator.network, np.zeros((2, 16))), "takes a ReadyGenerator"),
    (lambda generator: draw_faces(generator, np.zeros((2, 16)), mode="eval"), "mode must be one of independent, pad"),
    (lambda generator: draw_faces(generator, np.zeros((2, 5))), r"shape \(n, 16\)"),
    (lambda generator: draw_faces(generator), "latent vectors or seeds"),
    (lambda generator: draw_faces(generator, np.zeros((2, 16)), seeds=[1]), "latent vectors or seeds"),
    (lambda generator: draw_faces(generator, np.zeros((2, 16)), batch_size=0), "batch_size must be"),
])
def test_bad_requests_are_named(trained_gan, call, message):
    with pytest.raises(ValueError, match=message):
        call(drawing.ready_generator(trained_gan))


def test_a_network_that_drew_faces_can_still_be_freed():
    network = networks.build_generator(Config(**TINY).networks)
    draw_faces(ReadyGenerator(network), np.zeros((2, TINY["z_dim"]), np.float32))
    networks.recompute_batch_norm_statistics(network, batch_size=4, batches=1)
    alive = weakref.ref(network)
    del network
    gc.collect()
    assert alive() is None, "a compiled-function cache keeps every generator that ever drew faces in memory"


def test_the_differentiable_drawing_draws_what_draw_faces_draws_and_passes_gradients_to_z(generator):
    z = tf.Variable(drawing.seed_vectors([3, 4], generator.z_dim))
    with tf.GradientTape() as tape:
        faces = drawing.draw_differentiable(generator, z)
        brightness = tf.reduce_mean(faces)
    np.testing.assert_array_equal(to_uint8(faces.numpy()), draw_faces(generator, z.numpy()))
    gradient = tape.gradient(brightness, z)
    assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
