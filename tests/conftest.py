"""Shared test fixtures: the real CelebA sample when it is there, faces the tests make, tiny network settings.

Tests that need real CelebA take the `celeba` fixture: without the sample they are skipped, naming CELEBA_DIR
(with REQUIRE_CELEBA=1, as CI sets it, they fail instead). Everything else trains and scores `made_faces`: a folder
laid out like CelebA's, of drawn faces, so the suite runs on any clone.
"""

import io
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

import facegan  # noqa: E402, F401  (TensorFlow's fast CPU kernels in the tests too, as in every way into the project)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

CELEBA = pathlib.Path(os.environ.get("CELEBA_DIR", ROOT.parent / "shared" / "celeba"))
CELEBA_MISSING = (f"needs the CelebA sample: none at {CELEBA}; set CELEBA_DIR to a folder holding "
                  "img_align_celeba/ and CelebA's list files")

# Tiny networks: the real architecture (64×64, four up- and down-sampling layers) with few channels.
# float32 whatever the machine: "auto" (the default) would train in bfloat16 on some machines, and tests compare
# numbers to tight tolerances; the tests of bfloat16 and float16 ask for them by name.
TINY = dict(generator_width=4, discriminator_width=4, z_dim=16, batch_size=8, precision="float32")


@pytest.fixture(scope="session")
def celeba():
    if not (CELEBA / "img_align_celeba").is_dir():
        if os.environ.get("REQUIRE_CELEBA") == "1":
            pytest.fail(f"REQUIRE_CELEBA=1 but the CelebA sample is missing at {CELEBA} (set CELEBA_DIR)")
        pytest.skip(CELEBA_MISSING)
    return CELEBA


def drawn_face(seed: int, width: int = 178, height: int = 218) -> Image.Image:
    """A face-like picture as aligned CelebA frames it: a skin-toned oval with eyes, brows and a mouth on a
    background, every colour, size and position drawn from the seed (drawn_attributes tells what it shows)."""
    random = np.random.default_rng(seed)
    picture = Image.new("RGB", (width, height), tuple(int(v) for v in random.integers(0, 256, 3)))
    draw = ImageDraw.Draw(picture)
    skin = tuple(int(v) for v in np.array([224, 172, 140]) * random.uniform(0.5, 1.1))
    cx, cy = width / 2 + random.normal(0, 4), height * 0.55 + random.normal(0, 4)
    rx, ry = random.uniform(34, 44), random.uniform(46, 56)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    hair = tuple(int(v) for v in random.integers(0, 120, 3))
    draw.chord((cx - rx - 4, cy - ry - 8, cx + rx + 4, cy + ry * 0.2), 180, 360, fill=hair)
    eye_y, eye_dx = cy - ry * 0.1, rx * random.uniform(0.35, 0.5)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - 6, eye_y - 3, ex + 6, eye_y + 3), fill=(240, 240, 240))
        draw.ellipse((ex - 3, eye_y - 3, ex + 3, eye_y + 3), fill=hair)
        draw.line((ex - 8, eye_y - 9, ex + 8, eye_y - 10), fill=hair, width=3)
    smile = random.uniform(0, 1)
    mouth_y = cy + ry * 0.5
    if smile > 0.5:  # a wide open smile
        draw.chord((cx - 18, mouth_y - 8, cx + 18, mouth_y + 12), 0, 180, fill=(150, 40, 50))
    else:
        draw.arc((cx - 14, mouth_y, cx + 14, mouth_y + 12), 180, 360, fill=(150, 40, 50), width=3)
    return picture


def drawn_attributes(seed: int) -> dict:
    """What drawn_face(seed) shows, as CelebA's labels: Smiling for an open smile, Pale_Skin for light skin."""
    random = np.random.default_rng(seed)
    random.integers(0, 256, 3)  # the background
    skin = random.uniform(0.5, 1.1)
    random.normal(0, 4), random.normal(0, 4), random.uniform(34, 44), random.uniform(46, 56)
    random.integers(0, 120, 3), random.uniform(0.35, 0.5)
    return {"Smiling": random.uniform(0, 1) > 0.5, "Pale_Skin": skin > 0.9}


def write_attribute_list(path, seeds, names=("5_o_Clock_Shadow", "Pale_Skin", "Smiling", "Young")):
    """A list_attr_celeba.txt for drawn faces 000001.jpg …: their drawn attributes, the others at random."""
    random = np.random.default_rng(0)
    lines = [str(len(seeds)), " ".join(names)]
    for seed in seeds:
        drawn = drawn_attributes(seed)
        values = [drawn[name] if name in drawn else random.uniform() < 0.3 for name in names]
        lines.append(f"{seed:06d}.jpg " + " ".join("1" if value else "-1" for value in values))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def made_faces(tmp_path_factory):
    """A folder laid out like the CelebA sample (img_align_celeba/ of 178×218 JPEGs), of 160 drawn faces."""
    root = tmp_path_factory.mktemp("made-celeba")
    folder = root / "img_align_celeba"
    folder.mkdir()
    for index in range(1, 161):
        drawn_face(index).save(folder / f"{index:06d}.jpg", quality=92)
    return root


def tiny_config(tmp_path, made_faces, cache_dir, **settings):
    """The settings of a tiny training run on a folder laid out like CelebA's, into tmp_path."""
    from facegan.config import Config

    values = dict(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=3, sample_every=2,
                  checkpoint_every=2, checkpoint_dir=str(tmp_path / "my_net"), sample_dir=str(tmp_path / "imgs"),
                  **TINY)
    values.update(settings)
    return Config(**values)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One face cache for the session, so each folder's faces are decoded once."""
    return str(tmp_path_factory.mktemp("face-cache"))


def random_picture(width=178, height=218, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width, channels) if channels else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def jpeg_bytes(picture, **options):
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def pytest_terminal_summary(terminalreporter):
    """Say how many tests were skipped for want of the CelebA sample or of a browser, and how to run them."""
    reasons = [str(getattr(report, "longrepr", "")) for report in terminalreporter.stats.get("skipped", [])]
    celeba = sum("CELEBA_DIR" in reason for reason in reasons)
    browser = sum("apt-get install -y chromium" in reason for reason in reasons)
    if celeba:
        terminalreporter.write_line(f"{celeba} CelebA tests skipped: set CELEBA_DIR to the CelebA sample "
                                    f"(looked for {CELEBA}) to run them")
    if browser:
        terminalreporter.write_line(f"{browser} browser tests skipped: apt-get install -y chromium and pip install "
                                    "-r requirements.txt to run them")


def made_celeba(root):
    """img_align_celeba/ (12 drawn faces, 178×218) and img_align_celeba_89x109/ (30, half size; the first 12 names
    are also in the full-size folder)."""
    full, half = root / "img_align_celeba", root / "img_align_celeba_89x109"
    full.mkdir(parents=True)
    half.mkdir()
    for index in range(1, 13):
        drawn_face(index).save(full / f"{index:06d}.jpg", quality=92)
    for index in range(7, 37):
        drawn_face(index).resize((89, 109)).save(half / f"{index - 6:06d}.jpg", quality=92)
    return root


# The editing tests' tiny network, a stand-in attribute classifier of its colours, and the directions fitted with it
EDIT_NAMES = ["5_o_Clock_Shadow", "Pale_Skin", "Smiling", "Young"]


@pytest.fixture(scope="session")
def gan():
    import tensorflow as tf

    from facegan.config import Config
    from facegan.gan import DCGAN

    keras_seed = 11
    tf.keras.utils.set_random_seed(keras_seed)
    network = DCGAN.from_config(Config(**TINY))
    for _ in range(2):
        network.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1))
    return network


@pytest.fixture(scope="session")
def generator(gan):
    from facegan import drawing

    return drawing.ready_generator(gan)


@pytest.fixture(scope="session")
def classifier(generator):
    """A stand-in classifier whose four "attributes" are the faces' mean red, green, blue and red minus blue,
    standardised over the tiny generator's faces so that they fall on both sides: the mechanics need no more."""
    import keras

    from facegan.drawing import draw_faces

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


@pytest.fixture(scope="session")
def directions(generator, classifier):
    from facegan import editing

    return editing.fit_directions(generator, classifier, EDIT_NAMES, samples=600)
