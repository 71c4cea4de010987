"""coverage: the share of generated faces the classifier calls positive for each attribute, against real faces,
and the canonical attribute drawn furthest from the data's share."""

import numpy as np
import pytest

from facegan.drawing import draw_faces
from facegan.metrics import coverage
from conftest import EDIT_NAMES


def test_a_generator_that_never_draws_an_attribute_is_named_and_one_that_draws_like_the_data_is_not(generator,
                                                                                                   classifier):
    real = draw_faces(generator, seeds=range(300))
    same = coverage.attribute_coverage(classifier, EDIT_NAMES, real, real)
    assert all(row["ratio"] == 1.0 for row in same.values() if row["real"] > 0)
    # The stand-in classifier's third attribute ("Smiling") is the faces' mean blue: faces without blue never have it
    no_blue = real.copy()
    no_blue[..., 2] = 0
    rows = coverage.attribute_coverage(classifier, EDIT_NAMES, no_blue, real)
    assert rows["Smiling"]["generated"] == 0.0 and rows["Smiling"]["real"] > 0.2 and rows["Smiling"]["ratio"] == 0.0
    expected = (1 / (1 + np.exp(-classifier(real.astype(np.float32) / 127.5 - 1).numpy())) > 0.5).mean(axis=0)
    assert rows["Smiling"]["real"] == pytest.approx(expected[EDIT_NAMES.index("Smiling")], abs=1e-4)
    assert coverage.worst_canonical(rows) == ("Smiling", 1.0)
    with pytest.raises(ValueError, match="no canonical attribute"):
        coverage.worst_canonical({"Pale_Skin": rows["Pale_Skin"]})


def test_softened_faces_lose_their_fine_detail_and_the_bias_is_measured_on_them(generator, classifier):
    faces = draw_faces(generator, seeds=range(40))
    soft = coverage.softened(faces, 16)
    assert soft.shape == faces.shape and soft.dtype == np.uint8
    detail = lambda images: np.mean(np.diff(images.astype(float), axis=2) ** 2)  # noqa: E731
    assert detail(soft) < detail(coverage.softened(faces, 32)) < detail(faces)
    bias = coverage.softness_bias(classifier, EDIT_NAMES, faces)
    assert list(bias) == ["as they are", "through 32×32", "through 16×16"]
    np.testing.assert_allclose(list(bias["as they are"].values()), coverage.positive_shares(classifier, faces),
                               atol=1e-4)
    assert all(0 <= share <= 1 for shares in bias.values() for share in shares.values())
