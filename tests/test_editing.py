"""editing: directions fitted from a classifier's labels, conditional edits, edit waypoints, vector arithmetic,
projecting a photo, the explorer; with the CelebA sample, a fitted Smiling direction makes faces smile more."""


import numpy as np
import pytest

from facegan import attributes
from facegan.config import Config
from facegan import networks
from facegan import editing
from facegan import drawing
from facegan import latent
from facegan.drawing import ReadyGenerator, draw_faces
from facegan import training
from facegan.metrics import maths
from conftest import EDIT_NAMES, TINY, tiny_config

def test_each_direction_is_a_unit_normal_that_raises_its_attribute(generator, classifier, directions):
    assert directions.normals.shape == (len(directions.names), TINY["z_dim"])
    np.testing.assert_allclose(np.linalg.norm(directions.normals, axis=1), 1, rtol=1e-5)
    assert (directions.boundary_accuracy > 0.5).all()  # each boundary separates the labels better than chance
    rows = editing.measure_edits(generator, classifier, EDIT_NAMES, directions, directions.names, faces=40,
                                 strengths=[3])
    assert rows[0]["attribute"] is None and len(rows) == 1 + 2 * len(directions.names)
    for lower, upper in zip(rows[1::2], rows[2::2]):  # −3 and +3 of each attribute
        assert upper["change"] > lower["change"] and (lower["moved"] + upper["moved"]) / 2 > 0.5, (lower, upper)


def test_measure_edits_reports_what_moved_what_was_held_identity_and_realism(generator, classifier, directions):
    name, held = directions.names[0], directions.names[1:3]
    features = lambda faces: faces.astype(np.float32).reshape(len(faces), -1)[:, ::97]  # noqa: E731 (stand-in)
    real_features = features(draw_faces(generator, seeds=range(900, 1100)))
    options = dict(faces=200, strengths=[0.5, 1.5], held=held, features=features, real_features=real_features)
    free = editing.measure_edits(generator, classifier, EDIT_NAMES, directions, [name], **options)
    kept = editing.measure_edits(generator, classifier, EDIT_NAMES, directions, [name], conditional=True, **options)
    assert [row["strength"] for row in free] == [0, -1.5, -0.5, 0.5, 1.5]
    assert "identity" not in free[0] and free[0]["fid"] > 0 and free[0]["faces"] == 200
    far, near = free[4], free[3]
    assert far["identity"] > near["identity"] > 0  # a stronger edit moves the face further from itself
    assert far["fid"] > near["fid"]  # and further from the faces the network draws (here: the "real" ones)
    assert not free[4]["conditional"] and kept[4]["conditional"]
    z = editing.seed_vectors(range(200_000, 200_200), generator.z_dim)  # measure_edits' faces (its default seed)
    base = attributes.probabilities(classifier, draw_faces(generator, z))
    columns = [EDIT_NAMES.index(other) for other in held]
    for row, keep in ((far, ()), (kept[4], held)):  # "held": how far the held attributes moved, along the direction
        edited = attributes.probabilities(classifier, draw_faces(generator, directions.edit(z, {name: 1.5}, keep)))
        assert row["held"] == pytest.approx(np.abs((edited - base)[:, columns]).mean(), abs=1e-3)
    assert kept[4]["held"] != far["held"]  # the conditional edit moves along another direction
    ratio = max(far["fid"], free[1]["fid"]) / free[0]["fid"]
    assert editing.choose_ranges(free, realism_ratio=ratio - 1e-6) == {name: 0.5}  # ±1.5 breaks "faces" here
    assert editing.choose_ranges(free, realism_ratio=ratio) == {name: 1.5}


def test_a_conditional_direction_leaves_the_kept_attributes_alone(directions):
    name, kept = directions.names[0], directions.names[1:3]
    conditional = directions.direction(name, keep=kept)
    assert abs(np.linalg.norm(conditional) - 1) < 1e-5
    for other in kept:
        assert abs(float(conditional @ directions.normals[directions.index(other)])) < 1e-5
    assert float(conditional @ directions.normals[directions.index(name)]) > 0  # still toward the attribute
    z = np.zeros(TINY["z_dim"], np.float32)
    np.testing.assert_allclose(directions.edit(z, {name: 2.0}, keep=kept), 2 * conditional, atol=1e-6)
    with pytest.raises(ValueError, match="No direction for 'Wings'"):
        directions.direction("Wings")


def test_directions_are_saved_with_their_network_and_refused_for_another(generator, directions, tmp_path):
    editing.save_directions(directions, str(tmp_path))
    loaded = editing.load_directions(str(tmp_path), generator)
    np.testing.assert_array_equal(loaded.normals, directions.normals)
    assert loaded.names == directions.names
    assert loaded.slider_range(directions.names[0]) == editing.DEFAULT_RANGE  # not measured yet
    editing.save_directions(loaded.with_ranges({directions.names[0]: 2.0}), str(tmp_path))
    measured = editing.load_directions(str(tmp_path), generator)
    assert measured.slider_range(directions.names[0]) == 2.0
    assert measured.slider_range(directions.names[1]) == editing.DEFAULT_RANGE
    other = networks.build_generator(Config(**TINY).networks)
    with pytest.raises(ValueError, match="fitted on another network"):
        editing.load_directions(str(tmp_path), ReadyGenerator(other))
    with pytest.raises(FileNotFoundError, match="No directions.npz .*fit them first"):
        editing.load_directions(str(tmp_path / "elsewhere"), generator)


def test_an_edit_is_a_waypoint_like_any_other(gan, generator, directions, tmp_path):
    name = directions.names[0]
    cell = gan.grid_latents.numpy()[3]
    edited = editing.waypoint_vector({"face": [0, 3], "edit": {name: 3}}, generator, directions)
    np.testing.assert_allclose(edited, cell + 3 * directions.direction(name), atol=1e-6)
    z = editing.path_vectors([[0, 3], {"face": [0, 3], "edit": {name: 3}}, "random", "random"], generator, directions)
    assert z.shape == (4, TINY["z_dim"]) and not np.array_equal(z[2], z[3])
    path = latent.interpolate(generator, waypoints=list(z[:2]), frames=5, gif_path=str(tmp_path / "smile.gif"),
                              strip_path=None)
    np.testing.assert_allclose(path.latents[[0, -1]], z[:2], atol=1e-5)  # the same face, then the edited one
    along = editing.along_direction(cell, directions, name, [-3, 0, 3])
    np.testing.assert_allclose(along[1], cell, atol=1e-6)
    with pytest.raises(ValueError, match="edits a face and needs directions"):
        editing.waypoint_vector({"face": [0, 3], "edit": {name: 3}}, generator)
    with pytest.raises(ValueError, match="an edit is"):
        editing.waypoint_vector({"face": [0, 3], "strength": 3}, generator, directions)


def test_vector_arithmetic_is_one_call_and_one_picture(gan, generator):
    groups = dict(a=[[0, 0], [0, 1]], b=[[1, 0]], c=[7, 8, 9])
    plain, picture = editing.arithmetic(generator, **groups, variations=3, renormalise=False)
    grid = gan.grid_latents.numpy()
    means = [grid[[0, 1]].mean(0), grid[10], np.mean([drawing.seed_vector(s, TINY["z_dim"]) for s in (7, 8, 9)],
                                                     axis=0)]
    np.testing.assert_allclose(plain, means[0] - means[1] + means[2], atol=1e-5)  # the paper's own means
    assert picture.shape == (64, 64 * (3 + 1 + 3), 3)  # A, B, C, the result and three variations
    result, _ = editing.arithmetic(generator, **groups, variations=3)  # by default: at the prior's typical length
    typical = [mean / np.linalg.norm(mean) * latent.typical_norm(TINY["z_dim"]) for mean in means]
    expected = typical[0] - typical[1] + typical[2]
    np.testing.assert_allclose(result, expected / np.linalg.norm(expected) * latent.typical_norm(TINY["z_dim"]),
                               atol=1e-4)


def test_arithmetic_draws_faces_as_bright_as_ordinary_ones_from_a_network_that_draws_short_vectors_dim():
    """A network that, like the trained DCGAN, draws a short z dim: its brightness grows with |z|. The plain mean of
    three faces' z comes out dim; renormalised, the result is as bright as ordinary faces, and as likely under
    the prior (its length among those of ordinary z)."""
    import keras

    z_dim = 100
    z = keras.Input((z_dim,))
    length = keras.layers.Lambda(lambda v: keras.ops.sqrt(keras.ops.sum(v * v, axis=1, keepdims=True)))(z)
    brightness = keras.layers.Lambda(lambda n: keras.ops.tanh(n / 5.0 - 1.0))(length)  # |z| = 10: 0.76 of white
    pattern = keras.layers.Reshape((8, 8, 3))(keras.layers.Dense(192, activation="tanh", use_bias=False)(
        keras.layers.UnitNormalization()(z)))  # what the face looks like: its direction only
    image = keras.layers.Lambda(lambda parts: keras.ops.clip(
        keras.ops.repeat(keras.ops.repeat(0.2 * parts[1], 8, axis=1), 8, axis=2) + parts[0][:, :, None, None], -1, 1)
    )([brightness, pattern])
    network = keras.Model(z, image)
    grid = np.random.default_rng(3).standard_normal((100, z_dim)).astype(np.float32)
    generator = ReadyGenerator(network, grid)
    ordinary_faces = draw_faces(generator, seeds=range(200))
    ordinary = ordinary_faces.astype(np.float32).mean(axis=(1, 2, 3))
    features = lambda faces: faces[:, ::8, ::8].reshape(len(faces), -1).astype(np.float64)  # noqa: E731
    typical_realism = np.median(maths.realism_scores(features(ordinary_faces), features(
        draw_faces(generator, seeds=range(1000, 1100)))))
    groups = dict(a=[[0, 0], [0, 1], [0, 2]], b=[[1, 0], [1, 1], [1, 2]], c=[[2, 0], [2, 1], [2, 2]])
    for renormalise in (False, True):
        result, picture = editing.arithmetic(generator, **groups, renormalise=renormalise)
        faces = picture.reshape(64, 8, 64, 3).transpose(1, 0, 2, 3).astype(np.float32)  # 3 means, result, 4 more
        brightness = faces.mean(axis=(1, 2, 3))
        realism = maths.realism_scores(features(ordinary_faces), features(np.clip(faces, 0, 255).astype(np.uint8)))
        if renormalise:
            assert np.all(np.abs(brightness - ordinary.mean()) < 3 * ordinary.std())
            assert np.median(realism) >= 0.8 * typical_realism  # as real as ordinary faces
            lengths = np.linalg.norm(drawing.seed_vectors(range(200), z_dim), axis=1)
            assert lengths.min() < np.linalg.norm(result) < lengths.max()
        else:
            assert np.all(brightness[:3] < ordinary.min())  # the means of three: dimmer than every ordinary face
            assert np.all(realism[:3] < 1)


def test_identity_is_measured_in_units_of_the_distance_between_two_different_faces():
    features = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])  # each paired with the one two on
    between = editing.median_distance_between(features)
    assert between == pytest.approx(2.0)
    np.testing.assert_allclose(editing.identity_distances(features, features[[1, 0, 3, 2]], between), [1.0] * 4)
    np.testing.assert_allclose(editing.identity_distances(features, features + [0.5, 0.0], between), [0.25] * 4)


def test_the_typical_norm_is_the_mean_length_of_gaussian_vectors():
    for z_dim in (16, 100, 512):
        lengths = np.linalg.norm(np.random.default_rng(z_dim).standard_normal((20_000, z_dim)), axis=1)
        assert abs(latent.typical_norm(z_dim) / lengths.mean() - 1) < 2e-3
    z = latent.to_typical_norm(np.array([[3.0, 4.0], [0.0, -0.5]]))
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), latent.typical_norm(2), rtol=1e-6)
    np.testing.assert_allclose(z[0] / np.linalg.norm(z[0]), [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="zero vector"):
        latent.to_typical_norm(np.zeros((1, 4)))


@pytest.mark.slow
def test_on_celeba_a_fitted_smiling_direction_raises_the_smile_probability(celeba, tmp_path, cache_dir):
    settings = attributes.ClassifierSettings(width=16, epochs=2)
    attributes.train_classifier([str(celeba / "img_align_celeba")], str(tmp_path / "attributes"), settings,
                                cache_dir, show=False)
    classifier, names = attributes.load_classifier(str(tmp_path / "attributes"))
    config = tiny_config(tmp_path, celeba, cache_dir, steps=20, sample_every=100, checkpoint_every=100)
    training.train(config, show=False)
    generator = drawing.load_generator(config.outputs.checkpoint_dir)
    directions = editing.fit_directions(generator, classifier, names, samples=1000,
                                        folder=config.outputs.checkpoint_dir)
    rows = editing.measure_edits(generator, classifier, names, directions, ["Smiling"], faces=100, strengths=[3])
    # a tiny network after 20 steps draws blurs, not faces: most of them, not the 80% a trained one reaches
    smiling = rows[-1]
    assert smiling["strength"] == 3 and smiling["moved"] >= 0.65 and smiling["change"] > 0, rows
    assert editing.load_directions(config.outputs.checkpoint_dir, generator).names == directions.names
