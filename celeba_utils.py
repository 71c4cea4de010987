"""CelebA's faces in: files → decode and crop → cache → tf.data, and CelebA's attribute and partition lists.

A folder of images (CelebA's img_align_celeba plus any photos a user dropped in: any name, size, or format Pillow
reads) or the downloaded img_align_celeba.zip is decoded once, in parallel, into 64×64 uint8 faces. Those are
cached in one file keyed to the folder's listing, so later runs decode nothing, and a changed folder rebuilds
the cache. Files that are not readable images are skipped with one counted warning. Nothing in the data folder
is ever written.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import concurrent.futures
import hashlib
import io
import math
import os
import threading
import warnings
import zipfile
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from facegan import alignment
from facegan.images import atomic_write, to_float

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
GET_CELEBA = (f"Download CelebA's 'Align&Cropped Images' (img_align_celeba.zip, 202,599 faces) from {CELEBA_URL} "
              "and unzip it beside the notebook, or pass image_path=<folder or .zip>.")
CELEBA_WIDTH, CELEBA_HEIGHT = 178, 218  # the aligned CelebA images the 108-pixel crop is defined on
CACHE_VERSION = 3  # bump when decoding changes, so old caches are not reused (2: crops by picture kind; 3: no_face)
PARTITIONS = {"train": 0, "validation": 1, "test": 2}


class Faces(NamedTuple):
    images: np.ndarray  # (n, size, size, 3) uint8
    names: np.ndarray  # (n,) file names relative to the folder or zip
    skipped: np.ndarray  # names of the files left out: not readable as images, or (align=True) no single face
    no_face: np.ndarray = np.zeros(0, str)  # those of `skipped` left out because no single face was found


# --------------------------------------------------------------------------------------------- decoding one image

def is_aligned_celeba(width: int, height: int) -> bool:
    """Whether a picture has the shape of CelebA's aligned faces: 178×218, or a scaled copy (89×109 …), within 1%."""
    return abs(width / height - CELEBA_WIDTH / CELEBA_HEIGHT) <= 0.01 * CELEBA_WIDTH / CELEBA_HEIGHT


def crop_box(width: int, height: int, crop_size: int = 108):
    """The centre square a face is cut from, decided by what the picture is:
    - aligned CelebA (is_aligned_celeba): the centre crop_size pixels of 178 (DCGAN-tensorflow's CelebA crop),
      scaled with the picture;
    - any other picture: its largest centred square, so a square picture (a generated face, a grid tile, a face
      already cropped) is kept whole, and a portrait or landscape photo loses only its longer sides' edges."""
    if is_aligned_celeba(width, height):
        side = min(width, height, max(1, round(crop_size * width / CELEBA_WIDTH)))
    else:
        side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any Pillow mode: transparency over white, 16- and 32-bit greys scaled down, CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def needs_alignment(width: int, height: int, image_size: int = 64) -> bool:
    """Whether a picture is a photo to align (facegan.alignment) rather than a face already aligned: CelebA's
    aligned pictures (is_aligned_celeba) and squares of the training size are kept as they are."""
    return not is_aligned_celeba(width, height) and (width, height) != (image_size, image_size)


def load_face(source, image_size: int = 64, crop_size: int = 108, align: bool = False) -> np.ndarray:
    """One file (path or file object) → (image_size, image_size, 3) uint8: EXIF rotation applied, the centre
    square of crop_box, antialiased resize; a picture already image_size × image_size comes back pixel for pixel
    (crop_box keeps a square whole, and Pillow's resize to the same size copies it). With align, a photo
    (needs_alignment) first has its face found and aligned as CelebA aligns faces (facegan.alignment), which
    raises a ValueError naming the file when it finds no face or several.
    Raises whatever Pillow raises for a file that is not a readable image."""
    with Image.open(source) as image:
        aligning = align and needs_alignment(*image.size, image_size)
        if image.format == "JPEG" and not image.getexif().get(0x0112) and not aligning:
            # Decode at a reduced scale when the crop stays at least image_size pixels: much faster for big photos.
            left, top, right, _ = crop_box(*image.size, crop_size)
            factor = image_size / (right - left)
            image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        if aligning:
            name = source if isinstance(source, str) else getattr(source, "name", "the photo")
            image = Image.fromarray(alignment.align_face(np.asarray(image), str(name)))
        face = image.resize((image_size, image_size), Image.Resampling.LANCZOS,
                            box=crop_box(*image.size, crop_size))
        return np.asarray(face, dtype=np.uint8)


# --------------------------------------------------------------------------------------------- the files of a folder

def _folder_files(folder: str) -> List[str]:
    """Every regular file below folder (relative paths, sorted), not following links to folders (no loops);
    hidden files (.DS_Store, ._x.jpg) are passed over."""
    found = []
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(folder, relative)))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = os.path.join(relative, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif not entry.is_dir():  # files, links to files, and broken or looping links (skipped later)
                    found.append(path)
            except OSError:  # a link that loops onto itself
                found.append(path)
    return sorted(found)


class _Source:
    """A folder or a zip of images: the listing, its fingerprint, and reading one member."""

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(self.path) and os.path.isfile(self.path + ".zip"):
            self.path += ".zip"
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"No image folder at {self.path}. {GET_CELEBA}")
        self.is_zip = os.path.isfile(self.path)
        if self.is_zip:
            if not zipfile.is_zipfile(self.path):
                raise ValueError(f"image_path {self.path} is a file but not a zip of images: pass the image folder "
                                 f"or img_align_celeba.zip. {GET_CELEBA}")
            self._zip = zipfile.ZipFile(self.path)
            self._lock = threading.Lock()
            members = [info for info in self._zip.infolist() if not info.is_dir()
                       and not os.path.basename(info.filename).startswith(".") and "__MACOSX" not in info.filename]
            self.names = sorted(info.filename for info in members)
            fingerprint = sorted((info.filename, info.file_size, info.CRC) for info in members)
        else:
            self.names = _folder_files(self.path)
            fingerprint = []
            for name in self.names:
                try:
                    status = os.stat(os.path.join(self.path, name))
                    fingerprint.append((name, status.st_size, status.st_mtime_ns))
                except OSError:
                    fingerprint.append((name, -1, -1))
        if not self.names:
            raise FileNotFoundError(f"The image folder {self.path} is empty. {GET_CELEBA}")
        self.fingerprint = hashlib.sha256(repr(fingerprint).encode()).hexdigest()

    def open(self, name: str):
        if not self.is_zip:
            return os.path.join(self.path, name)
        with self._lock:
            return io.BytesIO(self._zip.read(name))


# --------------------------------------------------------------------------------------------- decode once, cache

def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dcgan-faces")


def cache_file(source_path: str, fingerprint: str, image_size: int, crop_size: int, cache_dir: str,
               align: bool = False) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in os.path.abspath(source_path))[-80:].strip("_")
    stem += "-aligned" if align else ""
    key = hashlib.sha256(f"{fingerprint} {image_size} {crop_size} {CACHE_VERSION}".encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"{stem}-{key}.npz")


def _decode_all(source: _Source, image_size: int, crop_size: int, progress: bool, align: bool = False):
    """Decode every file of source on all cores (Pillow and OpenCV release the GIL while they work); return the
    faces, which files were readable, and which had no single face to align (align=True)."""
    names = source.names
    images = np.zeros((len(names), image_size, image_size, 3), np.uint8)
    readable = np.zeros(len(names), bool)
    no_face = np.zeros(len(names), bool)

    def decode(index):
        try:
            images[index] = load_face(source.open(names[index]), image_size, crop_size, align)
            readable[index] = True
        except alignment.NoSingleFace:
            no_face[index] = True
        except Exception:  # a corrupt, truncated, empty or non-image file: counted and reported by the caller
            pass

    bar = _progress(len(names), f"decoding {os.path.basename(source.path)}", progress)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in range(0, len(names), 1024):
            chunk = range(start, min(start + 1024, len(names)))
            list(pool.map(decode, chunk))
            bar.update(len(chunk))
    bar.close()
    return images, readable, no_face


def _progress(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=description, unit="img", disable=not enabled, mininterval=1.0)


def load_faces(image_path: str, image_size: int = 64, crop_size: int = 108, cache_dir: Optional[str] = None,
               progress: bool = True, align: bool = False) -> Faces:
    """All faces of a folder or zip as uint8, decoded once and then read from the cache. With align, each photo
    that is not already an aligned face has its face found and aligned as CelebA's are (load_face); a photo with
    no face or several is skipped, counted in a warning."""
    source = _Source(image_path)
    cache_dir = cache_dir or default_cache_dir()
    path = cache_file(source.path, source.fingerprint, image_size, crop_size, cache_dir, align)
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as cached:
                faces = Faces(cached["images"], cached["names"], cached["skipped"], cached["no_face"])
        except Exception as error:  # a damaged cache is only a cache: decode again
            warnings.warn(f"The face cache {path} is unreadable ({error}); decoding the images again.")
        else:
            _warn_skipped(source.path, faces.skipped, faces.no_face)
            return faces
    images, readable, no_face = _decode_all(source, image_size, crop_size, progress, align)
    names = np.array(source.names)
    faces = Faces(images[readable], names[readable], names[~readable], names[no_face])
    _warn_skipped(source.path, faces.skipped, faces.no_face)
    if not len(faces.images):
        raise ValueError(f"None of the {len(names)} files in {source.path} is a readable image. {GET_CELEBA}")
    try:
        with atomic_write(path) as handle:
            np.savez(handle, images=faces.images, names=faces.names, skipped=faces.skipped, no_face=faces.no_face)
        stem = os.path.basename(path).rsplit("-", 1)[0]
        for old in os.listdir(cache_dir):  # older caches of the same folder: replaced by this one
            if old.startswith(stem + "-") and old.endswith(".npz") and old != os.path.basename(path):
                os.remove(os.path.join(cache_dir, old))
    except OSError as error:
        warnings.warn(f"Could not write the face cache {path} ({error}); the next run will decode again. "
                      "Pass cache_dir=<a writable folder>.")
    return faces


def _warn_skipped(path: str, skipped: Sequence[str], no_face: Sequence[str] = ()):
    no_face = set(str(name) for name in no_face)
    unreadable = [str(name) for name in skipped if str(name) not in no_face]
    for files, why in ((unreadable, "that are not readable images"),
                       (sorted(no_face), "in which no single face was found to align (no face, or several)")):
        if files:
            first = ", ".join(files[:5])
            warnings.warn(f"Skipped {len(files)} file(s) in {path} {why}: {first}{' …' if len(files) > 5 else ''}")


# --------------------------------------------------------------------------------------------- attribute lists

class Attributes(NamedTuple):
    names: List[str]  # the 40 attribute names, in the file's order
    files: np.ndarray  # (n,) image file names
    values: np.ndarray  # (n, 40) int8, 1 or -1


def _lines(path: str) -> List[str]:
    with open(path, "r", encoding="utf-8", newline=None) as handle:  # newline=None: CRLF and LF alike
        return [line for line in handle.read().splitlines() if line.strip()]


def read_attributes(path: str) -> Attributes:
    """list_attr_celeba.txt: a count line, a header of attribute names, then 'file v1 … v40' per image."""
    lines = _lines(path)
    if len(lines) < 2:
        raise ValueError(f"{path} is not a CelebA attribute list: expected a count line and a header line")
    names = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    bad = next((row for row in rows if len(row) != len(names) + 1), None)
    if bad is not None:
        raise ValueError(f"{path}: the row for {bad[0]} has {len(bad) - 1} values, the header names {len(names)}")
    files = np.array([row[0] for row in rows])
    values = np.array([row[1:] for row in rows], dtype=np.int8) if rows else np.zeros((0, len(names)), np.int8)
    return Attributes(names, files, values)


def read_partitions(path: str) -> dict:
    """list_eval_partition.txt: 'file partition' per line, 0 train, 1 validation, 2 test."""
    partitions = {}
    for line in _lines(path):
        name, value = line.split()
        partitions[name] = int(value)
    return partitions


def find_list(image_path: str, file_name: str, given: Optional[str] = None) -> str:
    """The path of one of CelebA's list files: `given`, or found beside or inside the image folder."""
    if given:
        if not os.path.isfile(given):
            raise FileNotFoundError(f"No file at {given}")
        return given
    folder = os.path.abspath(image_path)
    for candidate in (os.path.join(os.path.dirname(folder), file_name), os.path.join(folder, file_name)):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"Selecting faces by partition or attribute needs {file_name} beside {folder}; "
                            f"it comes with CelebA ({CELEBA_URL}, folder Anno/ or Eval/).")


def select(faces: Faces, image_path: str, partition: Optional[str] = None, attributes: Sequence[str] = (),
           attribute_file: Optional[str] = None, partition_file: Optional[str] = None) -> Faces:
    """The faces of one partition and/or with given attributes ('Smiling' to require, '-Smiling' to exclude).
    Files that the lists do not name (a user's own photos) are left out when a selection is asked for."""
    keep = np.ones(len(faces.names), bool)
    base_names = np.array([os.path.basename(str(name)) for name in faces.names])
    if partition is not None:
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {', '.join(PARTITIONS)} or None, got {partition!r}")
        partitions = read_partitions(find_list(image_path, "list_eval_partition.txt", partition_file))
        keep &= np.array([partitions.get(name, -1) == PARTITIONS[partition] for name in base_names])
    if attributes:
        table = read_attributes(find_list(image_path, "list_attr_celeba.txt", attribute_file))
        row_of = {name: row for row, name in enumerate(table.files)}
        rows = np.array([row_of.get(name, -1) for name in base_names])
        keep &= rows >= 0
        for wanted in attributes:
            name, sign = (wanted[1:], -1) if wanted.startswith("-") else (wanted, 1)
            if name not in table.names:
                raise ValueError(f"Unknown attribute {name!r}; CelebA's are: {', '.join(table.names)}")
            keep &= table.values[np.maximum(rows, 0), table.names.index(name)] == sign
    if not keep.any():
        raise ValueError(f"No face in {image_path} matches partition={partition!r}, attributes={list(attributes)}")
    return Faces(faces.images[keep], faces.names[keep], faces.skipped)


# --------------------------------------------------------------------------------------------- tf.data

def make_dataset(images: np.ndarray, batch_size: int, seed: int = 0, indices_only: bool = False):
    """An endless tf.data stream of shuffled float batches in [-1, 1]: a fresh order each epoch, reproducible
    from seed; batches are gathered from the in-memory faces, so nothing is decoded again. With indices_only,
    the stream holds the same batches as the faces' indices (int64), for a training step that gathers them from
    a copy on its device (facegan.gan.DCGAN.keep_on_device)."""
    import tensorflow as tf

    if batch_size > len(images):
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of faces ({len(images)}): "
                         "use a smaller batch_size or more images")
    shape = (batch_size,) + images.shape[1:]

    def epoch_order(epoch):  # stateless: the same order wherever tf.distribute rewrites the stream (a seeded
        # shuffle() is drawn anew there), so one device and several see the same global batches
        seed_of_epoch = tf.stack([tf.constant(seed, tf.int64), epoch])
        indices = tf.random.experimental.stateless_shuffle(tf.range(len(images), dtype=tf.int64), seed_of_epoch)
        return tf.data.Dataset.from_tensor_slices(indices)

    order = tf.data.Dataset.range(2 ** 62).flat_map(epoch_order).batch(batch_size, drop_remainder=True)
    if indices_only:
        return order.prefetch(tf.data.AUTOTUNE)

    def gather(indices):
        return images[indices]

    def batch_of(indices):
        batch = tf.numpy_function(gather, [indices], tf.uint8, stateful=False)
        return to_float(tf.ensure_shape(batch, shape))

    return order.map(batch_of, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
