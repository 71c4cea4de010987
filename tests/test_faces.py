"""experiments/faces: the held-out faces are in neither training set, and the split is the same every time."""

import os

from experiments import faces
from conftest import made_celeba


def test_the_held_out_faces_are_in_neither_training_set_and_the_split_is_fixed(tmp_path):
    celeba = made_celeba(tmp_path / "celeba")
    folders = faces.split_faces(str(celeba), str(tmp_path / "work"), held_out=8)
    held, large = set(os.listdir(folders["held_out"])), set(os.listdir(folders["large"]))
    small = set(os.listdir(folders["small"]))
    assert len(held) == 8 and not held & large and not held & small
    assert large == small | (set(os.listdir(celeba / "img_align_celeba_89x109")) - held)
    assert os.path.realpath(os.path.join(folders["large"], "000001.jpg")) == \
        str((celeba / "img_align_celeba" / "000001.jpg").resolve())  # a face in both: at full resolution
    again = faces.split_faces(str(celeba), str(tmp_path / "work2"), held_out=8)
    assert set(os.listdir(again["held_out"])) == held
    at_half = set(os.listdir(folders["small_at_half"]))  # the sample's faces the half-size folder holds too
    assert at_half == {f"{index:06d}.jpg" for index in range(1, 13)} and at_half <= small and not at_half & held
    assert os.path.realpath(os.path.join(folders["small_at_half"], "000001.jpg")) == \
        str((celeba / "img_align_celeba_89x109" / "000001.jpg").resolve())
