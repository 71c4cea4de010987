"""editing: directions fitted from a classifier's labels, conditional edits, edit waypoints, vector arithmetic,
projecting a photo, the explorer; with the CelebA sample, a fitted Smiling direction makes faces smile more."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from facegan import attributes
from facegan.config import Config
from facegan import networks
from facegan.gan import DCGAN
from facegan import editing
from facegan import drawing
from facegan import latent
from facegan.drawing import ReadyGenerator, draw_faces
from facegan import training
from facegan.metrics import maths
from conftest import TINY, drawn_face, tiny_config, write_attribute_list

NAMES = ["5_o_Clock_Shadow", "Pale_Skin", "Smiling", "Young"]


@pytest.fixture(scope="module")
def gan():
    keras_seed = 11
    tf.keras.utils.set_random_seed(keras_seed)
    network = DCGAN.from_config(Config(**TINY))
    for _ in range(2):
        network.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1))
    return network


@pytest.fixture(scope="module")
def generator(gan):
    return drawing.ready_generator(gan)


@pytest.fixture(scope="module")
def classifier(generator):
    """A stand-in classifier whose four "attributes" are the faces' mean red, green, blue and red minus blue,
    standardised over the tiny generator's faces so that they fall on both sides: the mechanics need no more."""
    import keras

    image = keras.Input((64, 64, 3))
    means = keras.layers.GlobalAveragePooling2D()(image)
    logits = keras.layers.Dense(4)(means)
    model = keras.Model(image, logits)
    mixing = np.array([[1.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, -1]], np.float32)
    faces = draw_faces(generator, np.random.default_rng(0).standard_normal((300, 16)))
    features = (faces.astype(np.float32) / 127.5 - 1).mean(axis=(1, 2)) @ mixing
    scale = 2 / features.std(axis=0)
    model.layers[-1].kernel.assign(mixing * scale)
    model.layers[-1].bias.assign(-features.mean(axis=0) * scale)
    return model


@pytest.fixture(scope="module")
def directions(generator, classifier):
    return editing.fit_directions(generator, classifier, NAMES, samples=600)


def test_each_direction_is_a_unit_normal_that_raises_its_attribute(generator, classifier, directions):
    assert directions.normals.shape == (len(directions.names), TINY["z_dim"])
    np.testing.assert_allclose(np.linalg.norm(directions.normals, axis=1), 1, rtol=1e-5)
    assert (directions.boundary_accuracy > 0.5).all()  # each boundary separates the labels better than chance
    rows = editing.measure_edits(generator, classifier, NAMES, directions, directions.names, faces=40,
                                 strengths=[3])
    assert rows[0]["attribute"] is None and len(rows) == 1 + 2 * len(directions.names)
    for lower, upper in zip(rows[1::2], rows[2::2]):  # −3 and +3 of each attribute
        assert upper["change"] > lower["change"] and (lower["moved"] + upper["moved"]) / 2 > 0.5, (lower, upper)


def test_measure_edits_reports_what_moved_what_was_held_identity_and_realism(generator, classifier, directions):
    name, held = directions.names[0], directions.names[1:3]
    features = lambda faces: faces.astype(np.float32).reshape(len(faces), -1)[:, ::97]  # noqa: E731 (stand-in)
    real_features = features(draw_faces(generator, seeds=range(900, 1100)))
    options = dict(faces=60, strengths=[0.5, 1.5], held=held, features=features, real_features=real_features)
    free = editing.measure_edits(generator, classifier, NAMES, directions, [name], **options)
    kept = editing.measure_edits(generator, classifier, NAMES, directions, [name], conditional=True, **options)
    assert [row["strength"] for row in free] == [0, -1.5, -0.5, 0.5, 1.5]
    assert "identity" not in free[0] and free[0]["fid"] > 0 and free[0]["faces"] == 60
    far, near = free[4], free[3]
    assert far["identity"] > near["identity"] > 0  # a stronger edit moves the face further from itself
    assert far["fid"] > near["fid"]  # and further from the faces the network draws (here: the "real" ones)
    assert not free[4]["conditional"] and kept[4]["conditional"]
    assert kept[4]["held"] < far["held"]  # the conditional edit holds the named attributes better
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


def test_the_typical_norm_is_the_mean_length_of_gaussian_vectors():
    for z_dim in (16, 100, 512):
        lengths = np.linalg.norm(np.random.default_rng(z_dim).standard_normal((20_000, z_dim)), axis=1)
        assert abs(latent.typical_norm(z_dim) / lengths.mean() - 1) < 2e-3
    z = latent.to_typical_norm(np.array([[3.0, 4.0], [0.0, -0.5]]))
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), latent.typical_norm(2), rtol=1e-6)
    np.testing.assert_allclose(z[0] / np.linalg.norm(z[0]), [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="zero vector"):
        latent.to_typical_norm(np.zeros((1, 4)))


def test_projecting_a_face_the_network_drew_finds_it_and_unusable_photos_are_refused(gan, generator, tmp_path):
    target_z = drawing.seed_vector(5, TINY["z_dim"])
    target = draw_faces(generator, target_z[None])[0]
    photo = tmp_path / "face.png"
    Image.fromarray(target).save(photo)  # 64×64: a face already cropped and scaled, taken as it is
    projection = editing.project(generator, gan.discriminator, str(photo), starts=4, steps=150)
    assert projection.pixel_error < 0.5 * projection.random_error
    np.testing.assert_array_equal(draw_faces(generator, projection.z[None])[0],
                                  projection.face)
    assert projection.photo.shape == (64, 64, 3) and projection.seconds > 0
    flat = tmp_path / "wall.png"
    Image.new("RGB", (178, 218), (120, 130, 140)).save(flat)
    with pytest.raises(ValueError, match="wall.png is nearly one flat colour"):
        editing.project(generator, gan.discriminator, str(flat))
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match="notes.jpg cannot be read as an image"):
        editing.project(generator, gan.discriminator, str(tmp_path / "notes.jpg"))
    with pytest.raises(FileNotFoundError, match="No photo at"):
        editing.project(generator, gan.discriminator, str(tmp_path / "missing.jpg"))
    noise = tmp_path / "static.png"  # a photo (not CelebA's shape, not the training size): searched for a face
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(noise)
    with pytest.raises(ValueError, match="static.png: no face found"):
        editing.project(generator, gan.discriminator, str(noise))


def test_the_perceptual_term_compares_the_classifiers_features_and_helps_the_projection(gan, generator, tmp_path):
    classifier = attributes.build_classifier(attributes.ClassifierSettings(width=4, attributes=NAMES))
    looks = editing.perceptual_network(classifier)
    assert len(looks.outputs) == 5  # after each convolution
    faces = drawing.draw_faces(generator, seeds=[1, 2]).astype(np.float32) / 127.5 - 1
    features = looks(faces)
    same = editing.perceptual_distance(features, [f[:1] for f in features]).numpy()
    assert same[0] == pytest.approx(0, abs=1e-6) and same[1] > 0
    target = drawing.draw_faces(generator, seeds=[5])[0]
    projection = editing.project(generator, gan.discriminator, target, starts=4, steps=100, perceptual=classifier,
                                 perceptual_weight=1.0)
    assert projection.pixel_error < 0.5 * projection.random_error
    with pytest.raises(ValueError, match="takes the attribute classifier"):
        editing.perceptual_network(gan.discriminator)


def test_the_explorer_redraws_the_face_as_its_sliders_move(generator, directions):
    box = editing.explorer(generator, directions, strongest=2, upscale_factor=1)
    assert set(box.sliders) == {"seed", "Smiling", "Young"}  # the canonical attributes the run has
    assert box.sliders["Smiling"].max == editing.DEFAULT_RANGE
    ranged = editing.explorer(generator, directions.with_ranges({"Smiling": 1.5}), shown=["Smiling", "Pale_Skin"])
    assert (ranged.sliders["Smiling"].min, ranged.sliders["Smiling"].max) == (-1.5, 1.5)
    assert set(ranged.sliders) == {"seed", "Smiling", "Pale_Skin"}
    box = editing.explorer(generator, directions, shown=directions.strongest(2), upscale_factor=1)
    first = box.image.value
    name = directions.strongest(2)[0]
    box.sliders[name].value = 2.5
    assert box.image.value != first
    box.sliders["seed"].value = 42
    expected_z = directions.edit(drawing.seed_vector(42, TINY["z_dim"]), {name: 2.5})
    np.testing.assert_allclose(box.current_z(), expected_z, atol=1e-6)
    shown = np.asarray(Image.open(io.BytesIO(box.image.value)))
    np.testing.assert_array_equal(shown, draw_faces(generator, expected_z[None])[0])


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


def test_drawn_faces_are_labelled_as_they_are_drawn(tmp_path):
    write_attribute_list(tmp_path / "list.txt", [2, 8], NAMES)
    lines = (tmp_path / "list.txt").read_text().splitlines()
    assert lines[2].split()[3] == "1" and lines[3].split()[3] == "-1"  # face 2 smiles, face 8 does not
    assert np.asarray(drawn_face(2)).shape == (218, 178, 3)
