"""Shared test fixtures: the real CelebA sample beside the checkout, tiny network settings, image makers."""

import io
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

CELEBA = pathlib.Path(os.environ.get("CELEBA_DIR", ROOT.parent / "shared" / "celeba"))

# Tiny networks: the real architecture (64×64, four up- and down-sampling layers) with few channels.
TINY = dict(generator_width=4, discriminator_width=4, z_dim=16, batch_size=8)


@pytest.fixture(scope="session")
def celeba():
    if not (CELEBA / "img_align_celeba").is_dir():
        pytest.fail(f"The CelebA sample is missing at {CELEBA}: tests read ../shared/celeba beside the checkout "
                    "(or set CELEBA_DIR)")
    return CELEBA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One face cache for the session, so the 5,100 real faces are decoded once."""
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
