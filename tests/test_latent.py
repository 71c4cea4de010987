"""latent: waypoints, slerp and linear paths, GIFs and strips, interpolate, and interpolate.ipynb headless."""

import numpy as np
import papermill
import pytest
import tensorflow as tf
from PIL import Image

from facegan.config import Config
from facegan.gan import DCGAN
from facegan import drawing
from facegan import latent
from facegan import runs
from facegan import training
from conftest import ROOT, TINY


# ----------------------------------------------------------------------------- paths

def test_slerp_keeps_endpoints_exact_and_a_gaussian_norm_while_linear_is_linear():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    path = latent.slerp(a, b, np.linspace(0, 1, 11))
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    norms = np.linalg.norm(path, axis=1)
    assert norms.min() > 0.95 * min(np.linalg.norm(a), np.linalg.norm(b))  # stays on the Gaussian shell
    midpoint = latent.linear(a, b, 0.5)
    assert np.linalg.norm(midpoint) < 0.8 * norms[5]  # a straight line cuts through the low-density middle
    np.testing.assert_allclose(latent.linear(a, b, [0.25]), [a + 0.25 * (b - a)], atol=1e-5)
    np.testing.assert_allclose(latent.slerp(a, 2 * a, [0.5]), [1.5 * a], atol=1e-5)  # same direction: a line


def test_latent_path_spreads_frames_over_the_segments():
    waypoints = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    path = latent.latent_path(waypoints, 9)
    assert path.shape == (9, 8)
    np.testing.assert_allclose(path[[0, 4, 8]], waypoints, atol=1e-5)  # waypoints at frames 0, 4 and 8
    loop = latent.latent_path(waypoints, 6, closed=True)
    np.testing.assert_allclose(loop[[0, 2, 4]], waypoints, atol=1e-5)  # 3 segments of 2 frames, no repeat
    assert not np.allclose(loop[-1], loop[0])
    np.testing.assert_allclose(latent.latent_path(waypoints[:2], 3, kind="linear")[1],
                               waypoints[:2].mean(axis=0), atol=1e-5)


def test_waypoints_resolve_to_grid_cells_lines_seeds_and_random():
    grid = np.arange(100 * 4, dtype=np.float32).reshape(100, 4)
    vectors = latent.waypoint_vectors([[2, 3], "column 3", 42, "random"], grid, seed=5)
    assert vectors.shape == (1 + 10 + 1 + 1, 4)
    np.testing.assert_array_equal(vectors[0], grid[23])
    np.testing.assert_array_equal(vectors[1:11], grid[3::10])
    np.testing.assert_array_equal(vectors[11], drawing.seed_vector(42, 4))
    np.testing.assert_array_equal(latent.waypoint_vectors(["row 9"], grid), grid[90:])


@pytest.mark.parametrize("call, message", [
    (lambda: latent.waypoint_vectors([[0, 0], [10, 3]], np.zeros((100, 4))), r"waypoints: \[10, 3\] is outside"),
    (lambda: latent.waypoint_vectors(["column 12", [0, 0]], np.zeros((100, 4))), "outside the 10×10 grid"),
    (lambda: latent.waypoint_vectors([[0, 0]], np.zeros((100, 4))), "at least 2 points"),
    (lambda: latent.waypoint_vectors(["face A", [0, 0]], np.zeros((100, 4))), "'face A' is not a waypoint"),
    (lambda: latent.latent_path(np.zeros((2, 4)), 1), "frames must be a whole number of at least 2"),
    (lambda: latent.latent_path(np.zeros((2, 4)), 5, kind="cubic"), "kind must be one of slerp, linear"),
    (lambda: latent.upscale(np.zeros((1, 2, 2, 3)), 0), "upscale must be a whole number"),
])
def test_bad_parameters_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- rendering

@pytest.fixture(scope="module")
def trained_gan():
    config = Config(**TINY)
    gan = DCGAN.from_config(config)
    for _ in range(3):
        gan.train_step(tf.random.uniform((config.training.batch_size, 64, 64, 3), -1, 1))
    return gan


def test_write_gif_loops_at_the_given_speed_and_leaves_no_temporary_file(tmp_path):
    frames = np.stack([np.full((8, 8, 3), value, np.uint8) for value in (0, 128, 255)])
    latent.write_gif(frames, str(tmp_path / "a.gif"), fps=20)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0 and gif.info["duration"] == 50
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]


@pytest.mark.parametrize("count, columns", [(24, 8), (10, 10), (25, 9), (7, 7), (30, 10), (31, 8), (1, 1)])
def test_a_strips_columns_fit_its_frames(count, columns):
    assert latent.strip_columns(count) == columns
    rows = -(-count // columns)
    assert rows * columns - count < rows  # never a whole empty column's worth of black cells


def test_interpolate_returns_its_path_and_the_modes_compare_on_those_vectors(trained_gan, tmp_path):
    generator = drawing.ready_generator(trained_gan)
    path = latent.interpolate(generator, waypoints=[[0, 0], 7, [9, 0]], frames=24,
                              gif_path=str(tmp_path / "a.gif"), strip_path=str(tmp_path / "a.png"))
    assert path.latents.shape == (24, trained_gan.networks.z_dim) and path.frames.shape == (24, 64, 64, 3)
    np.testing.assert_array_equal(path.latents[0], trained_gan.grid_latents.numpy()[0])
    assert Image.open(tmp_path / "a.png").size == (8 * 64, 3 * 64)  # 24 frames: 3 rows of 8, no black cells
    picture = latent.compare_modes(generator, path.latents[:5])
    assert picture.shape == (2 * 64, 5 * 64, 3)
    np.testing.assert_array_equal(picture[:64].reshape(64, 5, 64, 3).swapaxes(0, 1), path.frames[:5])


# ----------------------------------------------------------------------------- the notebook

@pytest.mark.slow
def test_interpolate_notebook_renders_the_path_between_two_grid_faces_and_an_edit(tmp_path, made_faces, cache_dir):
    from facegan import editing

    training.train(Config(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=3,
                                checkpoint_dir=str(tmp_path / "my_net"), sample_dir=str(tmp_path / "imgs"), **TINY),
                   show=False)
    gan, _ = runs.load_gan(str(tmp_path / "my_net"))
    normal = np.random.default_rng(3).standard_normal((1, TINY["z_dim"])).astype(np.float32)
    directions = editing.Directions(["Smiling"], normal / np.linalg.norm(normal), np.array([0.9]), np.array([0.5]),
                                    editing.network_fingerprint(drawing.ready_generator(gan)))
    editing.save_directions(directions, str(tmp_path / "my_net"))
    gif, strip = tmp_path / "testimgs" / "test.gif", tmp_path / "testimgs" / "examples.png"
    edit = {"face": [9, 3], "edit": {"Smiling": 3}}
    papermill.execute_notebook(
        str(ROOT / "interpolate.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT), progress_bar=False,
        parameters=dict(checkpoint_dir=str(tmp_path / "my_net"), waypoints=[[0, 3], [9, 3], edit], frames=7,
                        upscale=2, gif_path=str(gif), strip_path=str(strip),
                        arithmetic={"a": [[0, 1]], "b": [[2, 2]], "c": [[5, 7]]}))
    cell_z = gan.grid_latents.numpy()[[3, 93]]
    waypoint_z = np.concatenate([cell_z, cell_z[1:] + 3 * directions.normals])  # frames 0, 3 and 6
    expected = latent.upscale(drawing.draw_faces(drawing.ready_generator(gan), waypoint_z), 2)

    with Image.open(gif) as animation:
        assert animation.n_frames == 7 and animation.size == (128, 128) and animation.info["loop"] == 0
    import imageio.v3 as iio
    frames = iio.imread(gif, index=None)[..., :3].astype(int)
    for frame, image, other in zip(frames[[0, -1]], expected[[0, -1]], expected[[-1, 0]]):
        error = np.abs(frame - image).mean()
        assert error < 3  # a GIF has 256 colours: near, not bit-exact
        assert error < np.abs(frame - other).mean()  # and nearer its own endpoint than the other one

    tiles = np.asarray(Image.open(strip)).reshape(1, 128, 7, 128, 3).swapaxes(1, 2).reshape(7, 128, 128, 3)
    np.testing.assert_array_equal(tiles[[0, 3, 6]], expected)  # examples.png is lossless: exact frames
    assert not np.array_equal(tiles[3], tiles[6])  # the edit changed the face
    notebook = (tmp_path / "out.ipynb").read_text()
    assert "attribute directions: Smiling" in notebook  # the directions were found and used
