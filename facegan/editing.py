"""Steer a face: attribute directions in z, edits, vector arithmetic, and how far an edit can go.

    generator = drawing.load_generator("my_net")
    classifier, names = attributes.load_classifier("my_net/attributes")
    directions = editing.fit_directions(generator, classifier, names, folder="my_net")   # saved beside the run
    z = editing.waypoint_vector({"face": [0, 3], "edit": {"Smiling": 3}}, generator, directions)

Directions follow InterFaceGAN (Shen et al. 2020): a few thousand generated faces are labelled by the attribute
classifier (attributes.py), a linear boundary is fitted in z for each attribute, and its unit normal is the
direction. An edit can hold other attributes fixed by projecting their normals out (conditional manipulation).
Directions belong to the network they were fitted on: they are saved beside its checkpoints with a fingerprint
of its weights, and refused for another network. Your own photo's z: facegan/projection.py; the sliders:
facegan/explorer.py.
"""

import dataclasses
import hashlib
import os
from typing import Dict, Optional, Sequence

import numpy as np
import scipy.optimize

from facegan.images import atomic_write, image_grid
from facegan import attributes, drawing, latent
from facegan.drawing import ReadyGenerator, draw_faces, seed_vectors

DIRECTIONS_FILE = "directions.npz"
CANONICAL = attributes.CANONICAL  # the attributes measured first, and the explorer's sliders
DEFAULT_RANGE = 3.0  # how far a slider goes for an attribute whose range was not measured (measure_edits)


# --------------------------------------------------------------------------------------------- directions

def network_fingerprint(generator: ReadyGenerator) -> str:
    """A digest of the generator's trained weights: what a direction belongs to."""
    digest = hashlib.sha256()
    for weight in generator.network.trainable_weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Directions:
    """Unit normals of the attribute boundaries in z, one row per attribute, with how well each boundary
    separates the classifier's labels of held-out generated faces, and the network they belong to."""
    names: list
    normals: np.ndarray  # (attributes, z_dim), unit rows
    boundary_accuracy: np.ndarray  # (attributes,)
    positive_share: np.ndarray  # (attributes,) share of generated faces the classifier labelled positive
    fingerprint: str
    ranges: Optional[np.ndarray] = None  # (attributes,) how far an edit goes before faces break (choose_ranges); NaN:
    # not measured

    def slider_range(self, name: str) -> float:
        """How far the explorer lets an attribute go: its measured range, else DEFAULT_RANGE."""
        value = np.nan if self.ranges is None else float(self.ranges[self.index(name)])
        return DEFAULT_RANGE if np.isnan(value) else value

    def with_ranges(self, ranges: Dict[str, float]) -> "Directions":
        """A copy with these attributes' measured ranges (the others keep theirs)."""
        values = np.full(len(self.names), np.nan) if self.ranges is None else np.array(self.ranges, np.float64)
        for name, value in ranges.items():
            values[self.index(name)] = value
        return dataclasses.replace(self, ranges=values)

    def direction(self, name: str, keep: Sequence[str] = ()) -> np.ndarray:
        """The unit direction of an attribute; with `keep`, the part orthogonal to those attributes' normals, so
        that moving along it leaves them unchanged to first order (InterFaceGAN's conditional manipulation)."""
        normal = self.normals[self.index(name)].astype(np.float64)
        if keep:
            others = self.normals[[self.index(other) for other in keep if other != name]].astype(np.float64)
            if len(others):
                normal = normal - others.T @ np.linalg.lstsq(others @ others.T, others @ normal, rcond=None)[0]
        return (normal / np.linalg.norm(normal)).astype(np.float32)

    def edit(self, z, edits: Dict[str, float], keep: Sequence[str] = ()) -> np.ndarray:
        """z moved by strength × direction for each attribute of `edits`."""
        z = np.array(z, np.float32)
        for name, strength in edits.items():
            z = z + float(strength) * self.direction(name, keep)
        return z

    def index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"No direction for {name!r}; there are: {', '.join(self.names)}")
        return self.names.index(name)

    def strongest(self, count: int) -> list:
        """The attributes whose boundaries separate the labels best."""
        return [self.names[index] for index in np.argsort(-self.boundary_accuracy)[:count]]


def fit_boundary(z: np.ndarray, labels: np.ndarray, l2: float = 1e-2):
    """Logistic regression of labels on z (L-BFGS, a small L2 penalty): (unit normal, intercept)."""
    features = np.concatenate([z, np.ones((len(z), 1))], axis=1).astype(np.float64)
    signs = np.where(labels, 1.0, -1.0)

    def loss(weights):
        margins = signs * (features @ weights)
        value = np.logaddexp(0, -margins).mean() + l2 * np.sum(weights[:-1] ** 2) / 2
        gradient = -(features * (signs / (1 + np.exp(margins)))[:, None]).mean(axis=0)
        gradient[:-1] += l2 * weights[:-1]
        return value, gradient

    weights = scipy.optimize.minimize(loss, np.zeros(features.shape[1]), jac=True, method="L-BFGS-B").x
    norm = np.linalg.norm(weights[:-1])
    return weights[:-1] / max(norm, 1e-12), weights[-1] / max(norm, 1e-12)


def label_generated_faces(generator: ReadyGenerator, classifier, samples: int, seed: int):
    """(z, faces, probabilities) of `samples` generated faces, for the seeds seed, seed + 1, …"""
    z = seed_vectors(range(seed, seed + samples), generator.z_dim)
    faces = draw_faces(generator, z)
    return z, faces, attributes.probabilities(classifier, faces)


def fit_directions(generator: ReadyGenerator, classifier, names: Sequence[str], samples: int = 4000,
                   seed: int = 100_000, extreme_share: float = 0.25, folder: Optional[str] = None) -> Directions:
    """Label `samples` generated faces with the classifier and fit each attribute's boundary in z. As InterFaceGAN
    does, the faces the classifier scores highest (the top `extreme_share`) are the positives and those it scores
    lowest the negatives, so an attribute most faces lack still gets its direction; the boundary is fitted on
    four fifths of the faces and its accuracy measured on the rest. An attribute whose probability hardly varies
    gets no direction. Saved in `folder` (the run's checkpoint_dir) when given."""
    z, _, probability = label_generated_faces(generator, classifier, samples, seed)
    fitted = int(samples * 0.8)
    kept, normals, accuracy, share = [], [], [], []
    for index, name in enumerate(names):
        scores = probability[:, index]
        if scores.std() < 1e-3:
            continue
        parts = []
        for part in (slice(0, fitted), slice(fitted, samples)):
            order = np.argsort(scores[part])
            count = max(1, int(len(order) * extreme_share))
            chosen = np.concatenate([order[:count], order[-count:]])
            parts.append((z[part][chosen], np.arange(len(chosen)) >= count))
        normal, intercept = fit_boundary(*parts[0])
        held_z, held_labels = parts[1]
        kept.append(name)
        normals.append(normal)
        accuracy.append(float(np.mean((held_z @ normal + intercept > 0) == held_labels)))
        share.append(float(np.mean(scores > 0.5)))
    if not kept:
        raise ValueError("The classifier's scores do not vary over the generated faces, so no direction can be fitted: "
                         "train the GAN longer, or check the classifier (attributes.py)")
    directions = Directions(kept, np.array(normals, np.float32), np.array(accuracy), np.array(share),
                            network_fingerprint(generator))
    if folder:
        save_directions(directions, folder)
    return directions


def prepare_run(checkpoint_dir: str, data: Sequence[str], cache_dir: Optional[str] = None, show: bool = True,
                refit: bool = False):
    """Everything editing needs for a trained run: the attribute classifier (trained on the real faces of the
    folders `data` into checkpoint_dir/attributes, unless it is there) and the directions of the run's generator,
    fitted and saved beside its checkpoints unless directions of this very network are there already (refit=True
    fits them again, dropping their measured ranges). Returns (generator, classifier, names, directions)."""
    generator = drawing.load_generator(checkpoint_dir)
    classifier_dir = os.path.join(checkpoint_dir, "attributes")
    if not os.path.isfile(os.path.join(classifier_dir, attributes.SETTINGS_FILE)):
        attributes.train_classifier(list(data), classifier_dir, cache_dir=cache_dir, show=show)
    classifier, names = attributes.load_classifier(classifier_dir)
    directions = None
    if not refit and os.path.isfile(os.path.join(checkpoint_dir, DIRECTIONS_FILE)):
        try:
            directions = load_directions(checkpoint_dir, generator)
        except ValueError:  # fitted on an earlier network of the run: fit again
            directions = None
    if directions is None:
        directions = fit_directions(generator, classifier, names, folder=checkpoint_dir)
    return generator, classifier, names, directions


def save_directions(directions: Directions, folder: str):
    with atomic_write(os.path.join(folder, DIRECTIONS_FILE)) as handle:
        ranges = np.full(len(directions.names), np.nan) if directions.ranges is None else directions.ranges
        np.savez(handle, names=np.array(directions.names), normals=directions.normals,
                 boundary_accuracy=directions.boundary_accuracy, positive_share=directions.positive_share,
                 fingerprint=np.array(directions.fingerprint), ranges=np.asarray(ranges, np.float64))


def load_directions(folder: str, generator: ReadyGenerator) -> Directions:
    """The directions saved beside a run, refused (ValueError) if they were fitted on another network."""
    path = os.path.join(folder, DIRECTIONS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No {DIRECTIONS_FILE} in {os.path.abspath(folder)}: fit them first with "
                                "python directions.py (or editing.fit_directions(generator, classifier, names, "
                                "folder=...))")
    with np.load(path) as saved:
        directions = Directions(list(saved["names"]), saved["normals"], saved["boundary_accuracy"],
                                saved["positive_share"], str(saved["fingerprint"]),
                                saved["ranges"] if "ranges" in saved.files else None)
    if directions.fingerprint != network_fingerprint(generator):
        raise ValueError(f"The directions in {path} were fitted on another network (fingerprint "
                         f"{directions.fingerprint}, this one {network_fingerprint(generator)}): fit them again "
                         "for this network with editing.fit_directions")
    return directions


# --------------------------------------------------------------------------------------------- edits as waypoints

def waypoint_vector(waypoint, generator: ReadyGenerator, directions: Optional[Directions] = None,
                    seed: int = 0) -> np.ndarray:
    """One latent vector: any waypoint latent.waypoint_vectors knows, a z itself (e.g. a projected photo), or
    {"face": <waypoint>, "edit": {"Smiling": 3}, "keep": ["Male"]}: that face moved along the directions."""
    if isinstance(waypoint, dict):
        if directions is None:
            raise ValueError(f"waypoints: {waypoint!r} edits a face and needs directions (editing.load_directions)")
        unknown = set(waypoint) - {"face", "edit", "keep"}
        if unknown or "face" not in waypoint:
            raise ValueError(f"waypoints: an edit is {{'face': ..., 'edit': {{'Smiling': 3}}, 'keep': [...]}}, "
                             f"got {waypoint!r}")
        base = waypoint_vector(waypoint["face"], generator, directions, seed)
        return directions.edit(base, waypoint.get("edit", {}), waypoint.get("keep", ()))
    return latent.resolve_waypoints([waypoint], generator.grid_latents, seed)[0]


def path_vectors(waypoints: Sequence, generator: ReadyGenerator, directions: Optional[Directions] = None,
                 seed: int = 0) -> np.ndarray:
    """The latent vectors of a list of waypoints, edits among them ("column C" gives ten, as in latent.py)."""
    resolved = [waypoint_vector(waypoint, generator, directions, seed) if isinstance(waypoint, dict) else waypoint
                for waypoint in waypoints]
    return latent.waypoint_vectors(resolved, generator.grid_latents, seed)


def along_direction(z, directions: Directions, name: str, strengths: Sequence[float],
                    keep: Sequence[str] = ()) -> np.ndarray:
    """One vector per strength: z moved that far along an attribute's direction."""
    direction = directions.direction(name, keep)
    return np.stack([np.asarray(z, np.float32) + strength * direction for strength in strengths])


def arithmetic(generator: ReadyGenerator, a: Sequence, b: Sequence, c: Sequence, variations: int = 4,
               noise: float = 0.25, seed: int = 0, renormalise: bool = True):
    """The DCGAN paper's vector arithmetic (Radford et al. 2016, fig. 7): the mean z of the exemplars of A minus
    B's plus C's. Returns (result z, one picture): the three averaged faces, then the result and `variations`
    of it with a little noise added, as the paper shows them.

    A mean of k Gaussian vectors is about 1/√k as long as the vectors the network was trained on, and this network
    draws short vectors as dim, washed-out faces; so each mean, the result and each variation is brought back to
    the prior's typical length (latent.to_typical_norm), keeping its direction. renormalise=False gives the
    paper's plain means."""
    means = np.stack([np.mean(latent.resolve_waypoints(list(group), generator.grid_latents, seed), axis=0)
                      for group in (a, b, c)])
    means, result = combine_means(means, renormalise)
    jitter = np.random.default_rng(seed).standard_normal((variations, result.shape[0])).astype(np.float32) * noise
    variants = latent.to_typical_norm(result[None] + jitter) if renormalise else result[None] + jitter
    z = np.concatenate([means, result[None], variants]).astype(np.float32)
    faces = draw_faces(generator, z)
    return result.astype(np.float32), image_grid(faces, rows=1, columns=len(faces))


def combine_means(means: np.ndarray, renormalise: bool = True):
    """A − B + C from the mean z of each group, means[..., 0:3, :] (any number of leading axes, so many choices of
    exemplars combine at once): returns (the means, the result), each mean and the result brought back to the
    prior's typical length when renormalise (latent.to_typical_norm)."""
    means = np.asarray(means, np.float32)
    if renormalise:
        means = latent.to_typical_norm(means)
    result = means[..., 0, :] - means[..., 1, :] + means[..., 2, :]
    return means, (latent.to_typical_norm(result) if renormalise else result)


# --------------------------------------------------------------------------------------------- measuring an edit

def median_distance_between(features: np.ndarray) -> float:
    """The median distance between the features of two different faces (each paired with the one half a set on):
    the unit identity distances are measured in."""
    return float(np.median(np.linalg.norm(features - np.roll(features, len(features) // 2, axis=0), axis=1)))


def identity_distances(features_a: np.ndarray, features_b: np.ndarray, between_faces: float) -> np.ndarray:
    """Distance of each face's features to its counterpart's, over the median distance between different faces
    (median_distance_between): 0 is the same face, 1 as far as another face."""
    return np.linalg.norm(features_a - features_b, axis=1) / between_faces


def measure_edits(generator: ReadyGenerator, classifier, names: Sequence[str], directions: Directions,
                  attributes_to_edit: Sequence[str], faces: int = 200, seed: int = 200_000,
                  strengths: Sequence[float] = (1.0, 2.0, 3.0), held: Sequence[str] = (), conditional: bool = False,
                  features=None, real_features: Optional[np.ndarray] = None) -> list:
    """Edit `faces` generated faces (seeds seed, seed + 1, …: not the faces the directions were fitted on) along
    each attribute at −strength and +strength, and measure each edited set against the unedited faces. One row
    per attribute and signed strength, after a row for the unedited faces (strength 0):
    - moved: the share of faces whose probability of the attribute moved the edit's way (rose for +, fell for −);
    - change: the mean change of that probability; positive_share: the share the classifier calls positive;
    - others: the mean absolute change of every other attribute's probability;
    - held: that of the attributes `held` (without the edited one); with conditional=True the edit holds them,
      its direction made orthogonal to theirs (Directions.direction's keep);
    - identity (with `features`, a function of uint8 faces → feature rows): the median distance between an
      edited face's features and its unedited face's, over the median distance between two different unedited
      faces: 0 is the same face, 1 as far as another face;
    - fid and kid (with real_features, the same features of real faces): the edited set against real faces;
      realistic: the share of edited faces whose realism score (maths.realism_scores) is at least 1."""
    from facegan.metrics.maths import fid_from_features, kid_from_features, realism_scores

    z = seed_vectors(range(seed, seed + faces), generator.z_dim)
    unedited = draw_faces(generator, z)
    base = attributes.probabilities(classifier, unedited)
    base_features = features(unedited) if features is not None else None
    between_faces = median_distance_between(base_features) if base_features is not None else None

    def realism(face_features) -> dict:
        if real_features is None or face_features is None:
            return {}
        return dict(fid=round(fid_from_features(real_features, face_features), 2),
                    kid=round(kid_from_features(real_features, face_features,
                                                subset_size=min(1000, len(face_features))), 5),
                    realistic=round(float(np.mean(realism_scores(real_features, face_features) >= 1)), 3))

    rows = [dict(attribute=None, strength=0.0, faces=faces, **realism(base_features))]
    for name in attributes_to_edit:
        index = list(names).index(name)
        kept = [other for other in held if other != name]
        for strength in sorted({sign * float(value) for value in strengths for sign in (-1, 1)}):
            edited = draw_faces(generator, directions.edit(z, {name: strength}, kept if conditional else ()))
            probability = attributes.probabilities(classifier, edited)
            change = probability - base
            row = dict(attribute=name, strength=strength, conditional=bool(conditional and kept),
                       moved=round(float(np.mean(np.sign(strength) * change[:, index] > 0)), 3),
                       change=round(float(change[:, index].mean()), 3),
                       positive_share=round(float(np.mean(probability[:, index] > 0.5)), 3),
                       others=round(float(np.delete(np.abs(change), index, axis=1).mean()), 3))
            if kept:
                row["held"] = round(float(np.abs(change[:, [list(names).index(k) for k in kept]]).mean()), 3)
            edited_features = features(edited) if features is not None else None
            if edited_features is not None:
                row["identity"] = round(float(np.median(identity_distances(edited_features, base_features,
                                                                           between_faces))), 3)
            row.update(realism(edited_features))
            rows.append(row)
    return rows


def choose_ranges(rows: Sequence[dict], realism_ratio: float = 1.5) -> Dict[str, float]:
    """Each attribute's slider range from measure_edits' rows: the largest strength whose edits, both ways, keep the
    edited faces' FID within realism_ratio × the unedited faces' (faces that stay faces); the smallest strength
    measured when none does."""
    unedited = next(row["fid"] for row in rows if row["attribute"] is None)
    ranges = {}
    for name in dict.fromkeys(row["attribute"] for row in rows if row["attribute"] is not None):
        by_strength = {}
        for row in rows:
            if row["attribute"] == name:
                by_strength.setdefault(abs(row["strength"]), []).append(row["fid"] <= realism_ratio * unedited)
        passing = [strength for strength, fine in by_strength.items() if all(fine)]
        ranges[name] = max(passing) if passing else min(by_strength)
    return ranges
