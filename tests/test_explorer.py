"""explorer: sliders for the canonical attributes the run has, each within its measured range, redrawing the one
face of the seed and the edit as they move."""

import io

import numpy as np
from PIL import Image

from facegan import drawing, editing, explorer
from facegan.drawing import draw_faces
from conftest import TINY


def test_the_explorer_redraws_the_face_as_its_sliders_move(generator, directions):
    box = explorer.explorer(generator, directions, strongest=2, upscale_factor=1)
    assert set(box.sliders) == {"seed", "Smiling", "Young"}  # the canonical attributes the run has
    assert box.sliders["Smiling"].max == editing.DEFAULT_RANGE
    ranged = explorer.explorer(generator, directions.with_ranges({"Smiling": 1.5}), shown=["Smiling", "Pale_Skin"])
    assert (ranged.sliders["Smiling"].min, ranged.sliders["Smiling"].max) == (-1.5, 1.5)
    assert set(ranged.sliders) == {"seed", "Smiling", "Pale_Skin"}
    box = explorer.explorer(generator, directions, shown=directions.strongest(2), upscale_factor=1)
    first = box.image.value
    name = directions.strongest(2)[0]
    box.sliders[name].value = 2.5
    assert box.image.value != first
    box.sliders["seed"].value = 42
    expected_z = directions.edit(drawing.seed_vector(42, TINY["z_dim"]), {name: 2.5})
    np.testing.assert_allclose(box.current_z(), expected_z, atol=1e-6)
    shown = np.asarray(Image.open(io.BytesIO(box.image.value)))
    np.testing.assert_array_equal(shown, draw_faces(generator, expected_z[None])[0])
