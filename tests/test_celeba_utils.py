"""celeba_utils: decoding and cropping, bad files, the cache, attribute lists, tf.data, grids."""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

import celeba_utils
from facegan.images import atomic_write, image_grid, to_float
from conftest import jpeg_bytes, random_picture


# ----------------------------------------------------------------------------- one image

def test_crop_box_is_the_celeba_108_square_and_scales_with_the_image():
    assert celeba_utils.crop_box(178, 218, 108) == (35.0, 55.0, 143.0, 163.0)
    left, top, right, bottom = celeba_utils.crop_box(89, 109, 108)
    assert right - left == bottom - top == 54


@pytest.mark.parametrize("width, height, box", [
    (1000, 500, (250.0, 0.0, 750.0, 500.0)),  # a landscape photo: its largest centred square
    (480, 640, (0.0, 80.0, 480.0, 560.0)),  # a portrait photo
    (64, 64, (0.0, 0.0, 64.0, 64.0)),  # a generated face, a grid tile: whole
    (300, 300, (0.0, 0.0, 300.0, 300.0)),  # a face already cropped square, larger
])
def test_pictures_that_are_not_aligned_celeba_keep_their_largest_centred_square(width, height, box):
    assert not celeba_utils.is_aligned_celeba(width, height)
    assert celeba_utils.crop_box(width, height, 108) == box


def test_a_face_at_the_training_size_survives_loading_pixel_for_pixel(tmp_path):
    face = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    assert np.array_equal(celeba_utils.load_face(str(tmp_path / "face.png")), face)
    bigger = np.repeat(np.repeat(face, 2, axis=0), 2, axis=1)  # the same face at 128×128: whole, scaled down
    Image.fromarray(bigger).save(tmp_path / "bigger.png")
    assert np.abs(celeba_utils.load_face(str(tmp_path / "bigger.png")).astype(int) - face).mean() < 25


def test_load_face_is_the_antialiased_resize_of_the_centre_crop(celeba):
    path = celeba / "img_align_celeba" / "000001.jpg"
    face = celeba_utils.load_face(str(path))
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    with Image.open(path) as image:
        expected = np.asarray(image.convert("RGB").crop((35, 55, 143, 163)).resize((64, 64), Image.LANCZOS))
    difference = np.abs(face.astype(int) - expected)
    assert difference[2:-2, 2:-2].max() <= 1  # the edges differ: resize(box=) filters across the crop's border
    assert difference.mean() < 0.5


def test_half_resolution_faces_are_cropped_to_the_same_face(celeba):
    full = celeba_utils.load_face(str(celeba / "img_align_celeba" / "000001.jpg")).astype(float)
    half = celeba_utils.load_face(str(celeba / "img_align_celeba_89x109" / "000001.jpg")).astype(float)
    other = celeba_utils.load_face(str(celeba / "img_align_celeba_89x109" / "000002.jpg")).astype(float)
    assert np.abs(full - half).mean() < 12 < np.abs(full - other).mean()


def test_transparency_goes_over_white_and_sixteen_bit_greys_scale_down(tmp_path):
    Image.new("RGBA", (178, 218), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert (celeba_utils.load_face(str(tmp_path / "clear.png")) == 255).all()
    grey = np.full((218, 178), 32896, np.uint16)  # 32896 / 257 = 128
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert (celeba_utils.load_face(str(tmp_path / "grey16.png")) == 128).all()
    Image.new("CMYK", (178, 218), (0, 255, 255, 0)).save(tmp_path / "red.jpg")  # CMYK red
    face = celeba_utils.load_face(str(tmp_path / "red.jpg")).astype(int)
    assert face[..., 0].min() > 200 and face[..., 1:].max() < 60


def test_exif_rotation_is_applied(tmp_path):
    picture = np.zeros((100, 200, 3), np.uint8)
    picture[:, :100] = (255, 0, 0)  # left half red, right half blue
    picture[:, 100:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: the left half becomes the top half
    Image.fromarray(picture).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    face = celeba_utils.load_face(str(tmp_path / "rotated.jpg")).astype(int)
    assert face[0, :, 0].min() > 200 and face[0, :, 2].max() < 60  # top row red
    assert face[-1, :, 2].min() > 200 and face[-1, :, 0].max() < 60  # bottom row blue


# ----------------------------------------------------------------------------- folders, bad files, zip

def make_folder(folder, good=6):
    folder.mkdir()
    for index in range(good):
        random_picture(seed=index).save(folder / f"{index + 1:06d}.jpg", quality=90)
    data = jpeg_bytes(random_picture(seed=99))
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "corrupt.jpg").write_bytes(os.urandom(5000))
    (folder / "notes.txt").write_text("not an image")
    return folder


def snapshot(folder):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_bad_files_are_skipped_with_one_counted_warning_and_the_folder_is_untouched(tmp_path):
    folder = make_folder(tmp_path / "faces")
    before = snapshot(folder)
    with pytest.warns(UserWarning, match=r"Skipped 4 file\(s\)") as caught:
        faces = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False)
    assert len([w for w in caught if "Skipped" in str(w.message)]) == 1
    assert sorted(faces.skipped) == ["corrupt.jpg", "empty.jpg", "notes.txt", "truncated.jpg"]
    assert list(faces.names) == [f"{index:06d}.jpg" for index in range(1, 7)]
    assert faces.images.shape == (6, 64, 64, 3)
    assert snapshot(folder) == before


def test_user_photos_of_any_size_and_format_in_subfolders_are_read(tmp_path):
    folder = tmp_path / "faces"
    (folder / "mine").mkdir(parents=True)
    random_picture(640, 480, seed=1).save(folder / "mine" / "holiday.PNG")
    random_picture(50, 50, seed=2).convert("L").save(folder / "small grey.bmp")
    random_picture(300, 300, seed=3, mode="RGBA").save(folder / "alpha.png")
    faces = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False)
    assert sorted(faces.names) == ["alpha.png", os.path.join("mine", "holiday.PNG"), "small grey.bmp"]
    assert len(faces.skipped) == 0


def test_a_zip_gives_the_same_faces_as_the_folder(tmp_path):
    folder = make_folder(tmp_path / "img_align_celeba", good=4)
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"img_align_celeba/{path.name}")
    with pytest.warns(UserWarning, match="Skipped 4"):
        from_folder = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "c1"), progress=False)
    folder.rename(tmp_path / "moved")  # image_path without .zip finds the zip beside it
    with pytest.warns(UserWarning, match="Skipped 4"):
        from_zip = celeba_utils.load_faces(str(tmp_path / "img_align_celeba"), cache_dir=str(tmp_path / "c2"),
                                           progress=False)
    assert np.array_equal(from_folder.images, from_zip.images)
    assert [os.path.basename(name) for name in from_zip.names] == list(from_folder.names)


def test_missing_empty_and_unreadable_folders_say_where_and_how_to_get_celeba(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'}.*img_align_celeba.zip"):
        celeba_utils.load_faces(str(tmp_path / "nowhere"), cache_dir=str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*CelebA"):
        celeba_utils.load_faces(str(tmp_path / "empty"), cache_dir=str(tmp_path))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="Skipped 1"), pytest.raises(ValueError, match="None of the 1 files.*CelebA"):
        celeba_utils.load_faces(str(tmp_path / "junk"), cache_dir=str(tmp_path / "c"), progress=False)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="file.txt is a file but not a zip"):
        celeba_utils.load_faces(str(tmp_path / "file.txt"), cache_dir=str(tmp_path))


# ----------------------------------------------------------------------------- the cache

def test_a_second_load_decodes_nothing_and_a_changed_folder_rebuilds(tmp_path, monkeypatch):
    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(5):
        random_picture(seed=index).save(folder / f"{index}.png")
    decoded = []
    real_load_face = celeba_utils.load_face
    monkeypatch.setattr(celeba_utils, "load_face", lambda *a, **k: decoded.append(1) or real_load_face(*a, **k))
    cache = str(tmp_path / "cache")

    def load():
        decoded.clear()
        return celeba_utils.load_faces(str(folder), cache_dir=cache, progress=False)

    first = load()
    assert len(decoded) == 5
    second = load()
    assert len(decoded) == 0 and np.array_equal(first.images, second.images)
    random_picture(seed=10).save(folder / "new.png")  # added
    assert len(load().images) == 6 and len(decoded) == 6
    (folder / "0.png").unlink()  # removed
    assert len(load().images) == 5 and len(decoded) == 5
    random_picture(seed=11).save(folder / "1.png")  # changed
    changed = load()
    assert len(decoded) == 5 and not np.array_equal(changed.images[0], second.images[1])
    assert len(os.listdir(cache)) == 1  # older caches of the folder are replaced, not piled up


def test_the_real_celeba_sample_loads_whole(celeba, cache_dir):
    faces = celeba_utils.load_faces(str(celeba / "img_align_celeba"), cache_dir=cache_dir, progress=False)
    assert faces.images.shape == (5100, 64, 64, 3) and len(faces.skipped) == 0
    assert 60 < faces.images.mean() < 200  # real photos, not blank tiles


# ----------------------------------------------------------------------------- attribute and partition lists

@pytest.mark.slow
def test_official_lists_parse_with_crlf_and_lf(celeba, tmp_path):
    attributes = celeba_utils.read_attributes(str(celeba / "list_attr_celeba.txt"))
    assert len(attributes.files) == 202599 and len(attributes.names) == 40
    assert attributes.names[31] == "Smiling" and set(np.unique(attributes.values)) == {-1, 1}
    lf = tmp_path / "attr_lf.txt"
    lf.write_bytes((celeba / "list_attr_celeba.txt").read_bytes().replace(b"\r\n", b"\n"))
    again = celeba_utils.read_attributes(str(lf))
    assert again.names == attributes.names and np.array_equal(again.values, attributes.values)
    partitions = celeba_utils.read_partitions(str(celeba / "list_eval_partition.txt"))
    counts = np.bincount(list(partitions.values()))
    assert counts.tolist() == [162770, 19867, 19962]  # CelebA's published split


def test_select_keeps_a_partition_or_attributes_and_leaves_out_unlisted_photos(tmp_path):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for index, name in enumerate(["000001.jpg", "000002.jpg", "000003.jpg", "my_photo.jpg"]):
        random_picture(seed=index).save(folder / name)
    (tmp_path / "list_attr_celeba.txt").write_bytes(
        b"3\r\nSmiling Male\r\n000001.jpg  1 -1\r\n000002.jpg -1 -1\r\n000003.jpg  1  1\r\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 2\n000003.jpg 0\n")
    faces = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False)

    def names(**selection):
        return list(celeba_utils.select(faces, str(folder), **selection).names)

    assert names(partition="train") == ["000001.jpg", "000003.jpg"]
    assert names(attributes=["Smiling"]) == ["000001.jpg", "000003.jpg"]
    assert names(attributes=["Smiling", "-Male"]) == ["000001.jpg"]
    assert names(partition="test", attributes=["-Smiling"]) == ["000002.jpg"]
    with pytest.raises(ValueError, match="Unknown attribute 'Smile'.*Smiling"):
        names(attributes=["Smile"])
    with pytest.raises(ValueError, match="partition must be one of train, validation, test"):
        names(partition="dev")
    with pytest.raises(ValueError, match="No face"):
        names(partition="validation")


# ----------------------------------------------------------------------------- tf.data and grids

def test_dataset_gives_float_batches_covering_every_image_once_per_epoch():
    images = np.zeros((24, 64, 64, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(24) * 10  # each image carries its index
    batches = list(celeba_utils.make_dataset(images, 8, seed=3).take(6))
    assert all(batch.shape == (8, 64, 64, 3) and batch.dtype == "float32" for batch in batches)
    values = [np.rint((batch.numpy()[:, 0, 0, 0] + 1) * 127.5 / 10).astype(int) for batch in batches]
    first_epoch, second_epoch = np.concatenate(values[:3]), np.concatenate(values[3:])
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(24))
    assert not np.array_equal(first_epoch, second_epoch)  # reshuffled each epoch
    assert float(batches[0].numpy().min()) >= -1.0 and float(batches[0].numpy().max()) <= 1.0
    with pytest.raises(ValueError, match=r"batch_size \(25\) is larger than the number of faces \(24\)"):
        celeba_utils.make_dataset(images, 25)


def test_an_index_stream_holds_the_same_batches_as_the_image_stream():
    images = np.random.default_rng(2).integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
    batches = celeba_utils.make_dataset(images, 8, seed=5).take(6)
    indices = celeba_utils.make_dataset(images, 8, seed=5, indices_only=True).take(6)
    for batch, index in zip(batches, indices):
        assert index.dtype == "int64" and index.shape == (8,)
        np.testing.assert_array_equal(batch.numpy(), to_float(images[index.numpy()]).numpy())


def test_image_grid_puts_image_r_c_at_row_r_column_c():
    images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((6, 4, 5, 3), np.uint8)
    grid = image_grid(images, rows=2, columns=3)
    assert grid.shape == (8, 15, 3)
    for index in range(6):
        row, column = divmod(index, 3)
        assert (grid[row * 4:(row + 1) * 4, column * 5:(column + 1) * 5] == index).all()
    assert image_grid(np.array([[[[-1.0, 0.0, 1.0]]]])).tolist() == [[[0, 128, 255]]]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as handle:
            handle.write(b"half")
            raise RuntimeError("stopped mid-write")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["grid.png"]


# ----------------------------------------------------------------------------- hostile inputs

@pytest.mark.slow
def test_huge_images_symlink_loops_unreadable_files_and_bad_zip_members_never_stop_loading(tmp_path, monkeypatch):
    folder = tmp_path / "faces"
    folder.mkdir()
    random_picture(seed=1).save(folder / "good.jpg")
    Image.new("RGB", (10000, 10000), (200, 30, 30)).save(folder / "huge.png")  # 100 megapixels
    os.symlink("loop", folder / "loop")  # a link to itself
    os.symlink(".", folder / "here")  # a link to its own folder: not followed
    random_picture(seed=2).save(folder / "locked.jpg")
    real_open = celeba_utils._Source.open

    def open_refusing_locked(self, name):  # root reads any file, so a permission error is simulated
        if name == "locked.jpg":
            raise PermissionError(13, "Permission denied", name)
        return real_open(self, name)

    monkeypatch.setattr(celeba_utils._Source, "open", open_refusing_locked)
    with pytest.warns(UserWarning, match=r"Skipped 2 file\(s\)"):
        faces = celeba_utils.load_faces(str(folder), cache_dir=str(tmp_path / "cache"), progress=False)
    assert sorted(faces.skipped) == ["locked.jpg", "loop"]
    assert list(faces.names) == ["good.jpg", "huge.png"]
    assert (faces.images[1] == (200, 30, 30)).all()

    archive_path = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("faces/good.jpg", jpeg_bytes(random_picture(seed=3)))
        archive.writestr("faces/bad.jpg", jpeg_bytes(random_picture(seed=4)))
    data = bytearray(archive_path.read_bytes())
    start = data.index(b"faces/bad.jpg") + len(b"faces/bad.jpg") + 200  # inside bad.jpg's compressed bytes
    data[start:start + 50] = bytes(50)
    archive_path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"Skipped 1 file\(s\).*faces/bad.jpg"):
        from_zip = celeba_utils.load_faces(str(archive_path), cache_dir=str(tmp_path / "cache"), progress=False)
    assert list(from_zip.names) == ["faces/good.jpg"]
