"""alignment: finding the one face in a photo and aligning it as CelebA's aligned faces are. The photo is
matplotlib's own sample, Grace Hopper's portrait (public domain), so the tests need no download and no CelebA;
the constants are measured again on CelebA when it is there."""

import os
import warnings

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import celeba_utils
from facegan.images import png_file
from facegan import alignment


@pytest.fixture(scope="module")
def portrait():
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))  # 512 × 600, the face near the top centre


def moved(photo, angle=0.0, scale=0.6, shift=(150, 90), size=(760, 640)):
    """The photo shrunk (and turned) and moved off-centre on a larger canvas: a face as people take it."""
    matrix = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), angle, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(photo, matrix, size, borderMode=cv2.BORDER_REPLICATE)


def face_of(picture):
    """The 64 × 64 training face of an aligned 178 × 218 picture (the CelebA crop)."""
    return np.asarray(Image.fromarray(picture).resize((64, 64), Image.Resampling.LANCZOS,
                                                      box=celeba_utils.crop_box(178, 218)), np.float32)


def rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2)))


def assert_where_celeba_holds_faces(aligned):
    """The face found again in an aligned picture sits where the detector finds CelebA's faces (its spread over
    CelebA's own pictures: ±2 px, ±8.5% in width)."""
    assert aligned.shape == (218, 178, 3) and aligned.dtype == np.uint8
    box = alignment.find_faces(cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY))[0]
    centre = box[:2] + box[2:] / 2
    assert np.abs(centre - alignment.FACE_BOX_CENTRE).max() < 6
    assert abs(box[2] / alignment.FACE_BOX_WIDTH - 1) < 0.12


def test_the_aligned_face_sits_where_celeba_holds_its_faces(portrait):
    assert_where_celeba_holds_faces(alignment.align_face(portrait, "grace_hopper.jpg"))


def test_a_small_off_centre_face_aligns_to_the_same_face_and_a_centre_crop_does_not(portrait):
    reference = face_of(alignment.align_face(portrait))
    wild = moved(portrait)
    assert_where_celeba_holds_faces(alignment.align_face(wild, "wild.jpg"))
    aligned = face_of(alignment.align_face(wild, "wild.jpg"))
    # what loading did before: the centre square, no face search
    centre_crop = celeba_utils.load_face(png_file(wild))
    assert rms(centre_crop, reference) > 1.5 * rms(aligned, reference)


def test_a_photo_without_a_face_or_with_two_is_refused_naming_it(portrait):
    gradient = np.broadcast_to(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (300, 400, 3)).copy()
    with pytest.raises(alignment.NoSingleFace, match="wall.png: no face found"):
        alignment.align_face(gradient, "wall.png")
    pair = np.concatenate([portrait, portrait], axis=1)
    with pytest.raises(alignment.NoSingleFace, match="pair.png: 2 faces found; crop the photo"):
        alignment.align_face(pair, "pair.png")
    with pytest.raises(ValueError, match="uint8 \\(height, width, 3\\)"):
        alignment.align_face(portrait.astype(np.float32), "floats")


def test_a_large_photo_is_searched_at_a_smaller_size_and_aligned_the_same(portrait):
    large = cv2.resize(moved(portrait), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 3040 × 2560
    aligned = alignment.align_face(large)
    assert_where_celeba_holds_faces(aligned)


def test_load_faces_aligns_photos_keeps_aligned_faces_and_counts_those_without_one(portrait, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(moved(portrait)).save(folder / "holiday.png")
    aligned_shape = np.asarray(Image.fromarray(portrait).resize((178, 218)))  # CelebA's shape: kept, not searched
    Image.fromarray(aligned_shape).save(folder / "celeba_like.png")
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(folder / "wall.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        faces = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False, align=True)
    assert list(faces.names) == ["celeba_like.png", "holiday.png"] and list(faces.no_face) == ["wall.png"]
    messages = [str(warning.message) for warning in caught]
    assert any("Skipped 1 file(s)" in m and "no single face" in m and "wall.png" in m for m in messages)
    np.testing.assert_array_equal(faces.images[0], celeba_utils.load_face(str(folder / "celeba_like.png")))
    np.testing.assert_array_equal(faces.images[1], celeba_utils.load_face(str(folder / "holiday.png"), align=True))
    again = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False, align=True)
    assert list(again.no_face) == ["wall.png"]  # from the cache, with the reason kept
    unaligned = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False)
    assert len(unaligned.names) == 3 and not np.array_equal(unaligned.images[1], faces.images[1])


def test_the_constants_are_where_the_detector_finds_celeba_faces(celeba):
    folder = celeba / "img_align_celeba"
    names = sorted(os.listdir(folder))[:400]
    measured = alignment.measure_reference([np.asarray(Image.open(folder / name).convert("RGB")) for name in names])
    assert measured["face_found"] > 0.85 and measured["eyes_found"] > 0.5
    np.testing.assert_allclose(measured["face_box_centre"], alignment.FACE_BOX_CENTRE, atol=1.5)
    np.testing.assert_allclose(measured["eyes_midpoint"], alignment.EYES_MIDPOINT, atol=1.5)
    assert abs(measured["face_box_width"] / alignment.FACE_BOX_WIDTH - 1) < 0.03
    assert abs(measured["eye_distance"] / alignment.EYE_DISTANCE - 1) < 0.03


def test_a_tilted_face_is_turned_upright_when_both_eyes_are_found(celeba):
    folder = celeba / "img_align_celeba"
    tilts = []
    for name in sorted(os.listdir(folder))[:40]:
        wild = moved(np.asarray(Image.open(folder / name).convert("RGB")), angle=12.0, scale=1.4, shift=(60, 40),
                     size=(360, 380))  # turned 12° anticlockwise
        gray = cv2.cvtColor(wild, cv2.COLOR_RGB2GRAY)
        boxes = alignment.find_faces(gray)
        if len(boxes) and alignment.find_eyes(gray, boxes[0]) is not None:
            matrix = alignment.face_transform(gray, name)
            tilts.append(np.degrees(np.arctan2(matrix[0, 1], matrix[0, 0])))  # the turn that undoes it
    assert len(tilts) >= 10
    assert np.mean(np.abs(np.array(tilts) + 12) < 4) > 0.8


def test_each_decoding_thread_detects_with_its_own_cascades_and_finds_what_one_thread_finds(portrait):
    """load_faces aligns on every core at once; an OpenCV cascade keeps working state while it detects."""
    import concurrent.futures
    import threading

    mine = alignment.cascade("face")
    assert alignment.cascade("face") is mine  # loaded once in a thread
    other = concurrent.futures.ThreadPoolExecutor(1).submit(alignment.cascade, "face").result()
    assert other is not mine  # and again in another
    wall = np.full((300, 400), 90, np.uint8)
    gray = np.asarray(Image.fromarray(moved(portrait)).convert("L"))
    alone = [len(alignment.find_faces(picture)) for picture in (gray, wall)]
    assert alone == [1, 0]
    barrier = threading.Barrier(4)

    def detect(index):
        barrier.wait(timeout=30) if index < 4 else None
        return len(alignment.find_faces(gray if index % 2 == 0 else wall))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        found = list(pool.map(detect, range(40)))
    assert found == [alone[index % 2] for index in range(40)]
