"""projection: a face the network drew is found again, through Keras's Adam on z and the differentiable drawing,
with or without the perceptual term; photos that are not faces are refused with their names."""

import numpy as np
import pytest
from PIL import Image

from facegan import attributes, drawing, projection
from facegan.drawing import draw_faces
from conftest import EDIT_NAMES, TINY


def test_projecting_a_face_the_network_drew_finds_it_and_unusable_photos_are_refused(gan, generator, tmp_path):
    target_z = drawing.seed_vector(5, TINY["z_dim"])
    target = draw_faces(generator, target_z[None])[0]
    photo = tmp_path / "face.png"
    Image.fromarray(target).save(photo)  # 64×64: a face already cropped and scaled, taken as it is
    match = projection.project(generator, gan.discriminator, str(photo), starts=4, steps=150)
    assert match.pixel_error < 0.5 * match.random_error
    np.testing.assert_array_equal(draw_faces(generator, match.z[None])[0],
                                  match.face)
    assert match.photo.shape == (64, 64, 3) and match.seconds > 0
    flat = tmp_path / "wall.png"
    Image.new("RGB", (178, 218), (120, 130, 140)).save(flat)
    with pytest.raises(ValueError, match="wall.png is nearly one flat colour"):
        projection.project(generator, gan.discriminator, str(flat))
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ValueError, match="notes.jpg cannot be read as an image"):
        projection.project(generator, gan.discriminator, str(tmp_path / "notes.jpg"))
    with pytest.raises(FileNotFoundError, match="No photo at"):
        projection.project(generator, gan.discriminator, str(tmp_path / "missing.jpg"))
    noise = tmp_path / "static.png"  # a photo (not CelebA's shape, not the training size): searched for a face
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(noise)
    with pytest.raises(ValueError, match="static.png: no face found"):
        projection.project(generator, gan.discriminator, str(noise))


def test_the_perceptual_term_compares_the_classifiers_features_and_helps_the_projection(gan, generator, tmp_path):
    classifier = attributes.build_classifier(attributes.ClassifierSettings(width=4, attributes=EDIT_NAMES))
    looks = projection.perceptual_network(classifier)
    assert len(looks.outputs) == 5  # after each convolution
    faces = drawing.draw_faces(generator, seeds=[1, 2]).astype(np.float32) / 127.5 - 1
    features = looks(faces)
    same = projection.perceptual_distance(features, [f[:1] for f in features]).numpy()
    assert same[0] == pytest.approx(0, abs=1e-6) and same[1] > 0
    target = drawing.draw_faces(generator, seeds=[5])[0]
    match = projection.project(generator, gan.discriminator, target, starts=4, steps=100, perceptual=classifier,
                                 perceptual_weight=1.0)
    assert match.pixel_error < 0.5 * match.random_error
    with pytest.raises(ValueError, match="takes the attribute classifier"):
        projection.perceptual_network(gan.discriminator)


def test_rms_difference_is_one_value_for_two_pictures_and_one_per_picture_for_a_batch():
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert projection.rms_difference(black, white) == 255.0 and isinstance(projection.rms_difference(black, black),
                                                                           float)
    np.testing.assert_allclose(projection.rms_difference(np.stack([black, white]), white), [255.0, 0.0])
