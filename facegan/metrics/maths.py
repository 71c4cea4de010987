"""The metrics' maths, on arrays alone: FID and KID from features, SWD of Laplacian-pyramid patches, the
memorisation check, and the fixed sample of real faces. Images are NHWC, uint8 [0, 255] or floats in [-1, 1].
Nothing here imports TensorFlow or torch (a test checks it)."""

import concurrent.futures
from typing import Dict

import numpy as np

from facegan.images import to_uint8


def as_uint8(images) -> np.ndarray:
    """uint8 NHWC images from uint8 or [-1, 1] floats."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be NHWC with 3 channels, got shape {images.shape}")
    return images if images.dtype == np.uint8 else to_uint8(images)


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


# --------------------------------------------------------------------------------------------- realism of one face

def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))


def realism_scores(real_features: np.ndarray, features: np.ndarray, neighbours: int = 3) -> np.ndarray:
    """Kynkäänniemi et al. 2019's realism score of each face: around each real face a ball reaching its
    `neighbours`-th nearest real neighbour (the half of the balls that are largest dropped, as the paper does, so
    outliers do not swell the real manifold); a face's score is the largest ball radius over its distance to the
    ball's centre. At least 1: inside the real faces' manifold; the further below 1, the less like a real face.
    Unlike FID it scores each face on its own, so a set of similar faces is not penalised for being similar."""
    real_features = np.asarray(real_features, np.float64)
    if len(real_features) <= neighbours:
        raise ValueError(f"realism_scores needs more than {neighbours} real faces, got {len(real_features)}")
    between = _pairwise_distances(real_features, real_features)
    radii = np.sort(between, axis=1)[:, neighbours]  # column 0 is the face itself
    kept = radii <= np.median(radii)
    distances = _pairwise_distances(features, real_features[kept])
    return (radii[kept][None, :] / np.maximum(distances, 1e-12)).max(axis=1)


def precision_recall(real_features: np.ndarray, generated_features: np.ndarray, neighbours: int = 3,
                     batch_size: int = 1024) -> Dict[str, float]:
    """Kynkäänniemi et al. 2019's improved precision and recall: around each face of a set, a ball reaching its
    `neighbours`-th nearest neighbour in the same set is its manifold. Precision is the share of generated faces
    inside the real faces' manifold (how many look real); recall the share of real faces inside the generated
    faces' manifold (how much of the real variety the generator covers). A collapsing generator keeps its
    precision and loses recall, while FID may still improve."""
    real, generated = np.asarray(real_features, np.float64), np.asarray(generated_features, np.float64)
    if min(len(real), len(generated)) <= neighbours:
        raise ValueError(f"precision_recall needs more than {neighbours} faces on each side, got {len(real)} real "
                         f"and {len(generated)} generated")

    def radii(features):
        return np.concatenate([np.sort(_pairwise_distances(features[start:start + batch_size], features), axis=1)
                               [:, neighbours] for start in range(0, len(features), batch_size)])

    def inside(queries, centres, centre_radii):
        return np.concatenate([(_pairwise_distances(queries[start:start + batch_size], centres)
                                <= centre_radii[None, :]).any(axis=1) for start in range(0, len(queries), batch_size)])

    return {"precision": float(np.mean(inside(generated, real, radii(real)))),
            "recall": float(np.mean(inside(real, generated, radii(generated))))}


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


def sample_indices(total: int, count: int, seed: int = 0) -> np.ndarray:
    """The indices of real_sample's fixed random subset of `total` faces, rising (all of them when there are fewer)."""
    if count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def real_sample(images: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """A fixed random subset of the real faces (all of them when there are fewer)."""
    if count >= len(images):
        return images
    return images[sample_indices(len(images), count, seed)]


