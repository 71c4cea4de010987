"""What docs/editing reports, measured on a trained run: the attribute classifier, the directions fitted for the
run's generator, what editing along them does (to the attribute, to the others, to the face's identity and to
its realism, at each strength), the slider ranges chosen from that, vector arithmetic, and projecting photos the
run never saw, aligned as CelebA's faces are and as people take them.

    python -m experiments.editing --checkpoint my_net --data path/to/img_align_celeba \
        path/to/img_align_celeba_89x109 --held-out faces_the_run_never_saw/ --out docs/editing

Each part is written to OUT/results.json (its tables to OUT/tables.md) as soon as it is measured and is not
measured again (delete its key to redo it), so a stopped run resumes. The chosen ranges are saved with the run's
directions (my_net/directions.npz), where the explorer reads them. Pictures: OUT/edits.png, arithmetic.png and
projections.png (the network's faces only: the photos projected are CelebA's, which are not published). Identity
and realism use the FID Inception network (pip install -r requirements-metrics.txt).
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

import celeba_utils
from experiments import records
from facegan.images import atomic_write, image_grid, png_file, save_png
from facegan import alignment, attributes, editing, projection, runs
from facegan.drawing import ReadyGenerator, draw_faces, seed_vector
from facegan.metrics import inception, maths
from facegan.settings_text import add_arguments

STRENGTHS = (1.0, 2.0, 3.0)
EDIT_SEED = 200_000  # the edited faces' seeds: not among the directions' fitting seeds (100,000 …)
REALISM_RATIO = 1.5  # an edit keeps faces faces while its FID stays within this × the unedited faces'
# Projection settings compared (starts, steps, perceptual weight; 0: no perceptual term): error against time
PROJECTION_SETTINGS = ((4, 100, 0.0), (8, 200, 0.0), (8, 200, 0.1), (8, 200, 1.0), (16, 200, 0.1), (8, 400, 0.1))
SWEEP_PHOTOS = 12  # the photos error against time is measured on


# --------------------------------------------------------------------------------------------- edits

def measure_all_edits(generator: ReadyGenerator, classifier, names, directions: editing.Directions,
                      real_features: np.ndarray, faces: int) -> dict:
    """The canonical attributes with identity and realism, conditional (holding the other canonical attributes)
    and not; every other direction with the classifier's rows only."""
    canonical = [name for name in editing.CANONICAL if name in directions.names]
    options = dict(faces=faces, seed=EDIT_SEED, strengths=STRENGTHS, held=canonical)
    rows = editing.measure_edits(generator, classifier, names, directions, canonical,
                                 features=inception.inception_features, real_features=real_features, **options)
    conditional = editing.measure_edits(generator, classifier, names, directions, canonical, conditional=True,
                                        **options)
    others = [name for name in directions.names if name not in canonical]
    rest = editing.measure_edits(generator, classifier, names, directions, others, **options)
    return dict(canonical=rows, conditional=conditional[1:], rest=rest[1:], missing=[
        name for name in editing.CANONICAL if name not in directions.names])


def edit_grid(generator: ReadyGenerator, directions: editing.Directions, ranges: dict, faces: int = 2) -> np.ndarray:
    """One row per attribute and face: the face edited from −range to +range in 7 steps (the middle unedited)."""
    rows = []
    for index, name in enumerate(ranges):
        for face in range(faces):
            z = seed_vector(300_000 + 10 * index + face, generator.z_dim)
            rows.append(draw_faces(generator, editing.along_direction(
                z, directions, name, np.linspace(-ranges[name], ranges[name], 7))))
    return image_grid(np.concatenate(rows), rows=len(rows), columns=7)


# --------------------------------------------------------------------------------------------- arithmetic

def measure_arithmetic(generator: ReadyGenerator, classifier, names, real_features: np.ndarray, out_dir: str,
                       results: int = 200, exemplar_counts: Sequence[int] = (3, 10)) -> dict:
    """A − B + C (smiling women − neutral women + neutral men: each group the 100 of 3,000 generated faces the
    classifier scores most so) for `results` random choices of exemplars from each group, with 3 exemplars (the
    paper's) and with more, plain and renormalised: the brightness and contrast (mean and standard deviation of
    the pixels, 0–255) of the averaged faces and of the results, and the results' FID and realism scores
    (maths.realism_scores: median, and the share of at least 1) against real faces, beside ordinary faces'. FID
    also punishes results for resembling each other (they share exemplars); the realism score judges each alone."""
    z, _, probability = editing.label_generated_faces(generator, classifier, 3000, 500_000)
    smiling, male = probability[:, names.index("Smiling")], probability[:, names.index("Male")]
    groups = [np.argsort(-score)[:100] for score in (smiling * (1 - male), (1 - smiling) * (1 - male),
                                                     (1 - smiling) * male)]

    def looks(faces, with_fid=False) -> dict:
        pixels = faces.reshape(len(faces), -1).astype(np.float32)
        row = dict(brightness=round(float(pixels.mean()), 1), contrast=round(float(pixels.std(axis=1).mean()), 1))
        if with_fid:
            features = inception.inception_features(faces)
            realism = maths.realism_scores(real_features, features)
            row.update(fid=round(maths.fid_from_features(real_features, features), 2),
                       realism=round(float(np.median(realism)), 3), realistic=round(float(np.mean(realism >= 1)), 3))
        return row

    measured = dict(results=results, groups=dict(
        (label, dict(smiling=round(float(smiling[group].mean()), 2), male=round(float(male[group].mean()), 2)))
        for label, group in zip(("A", "B", "C"), groups)))
    measured["ordinary faces"] = looks(draw_faces(generator, seeds=range(600_000, 600_000 + results)), True)
    random = np.random.default_rng(0)
    for count in exemplar_counts:
        picks = [[z[random.choice(group, count, replace=False)] for group in groups] for _ in range(results)]
        for renormalise in (False, True):
            means = np.stack([[group.mean(axis=0) for group in pick] for pick in picks])  # (results, 3, z_dim)
            means, result = editing.combine_means(means, renormalise)
            label = f"{count} exemplars, " + ("renormalised" if renormalise else "plain means (the paper's)")
            measured[label] = dict(averaged=looks(draw_faces(generator, means.reshape(-1, means.shape[-1]))),
                                   result=looks(draw_faces(generator, result), True))
    first = [list(z[group[:3]]) for group in groups]
    pictures = [editing.arithmetic(generator, *first, renormalise=renormalise)[1] for renormalise in (False, True)]
    save_png(np.concatenate(pictures), os.path.join(out_dir, "arithmetic.png"))
    return measured


# --------------------------------------------------------------------------------------------- projection

def wild_photo(aligned: np.ndarray, random: np.random.Generator) -> np.ndarray:
    """An aligned CelebA picture as a photo people take: scaled 0.7–1.6×, turned up to ±10°, moved off-centre on a
    canvas 1.4–2.2 times its size (the edge pixels fill the rest)."""
    import cv2

    height, width = aligned.shape[:2]
    scale, angle = random.uniform(0.7, 1.6), random.uniform(-10, 10)
    canvas = (int(width * random.uniform(1.4, 2.2) * scale), int(height * random.uniform(1.4, 2.2) * scale))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    room = np.array(canvas) - np.array([width, height]) * scale
    matrix[:, 2] += np.array([width, height]) * (scale - 1) / 2 + room * random.uniform(0.1, 0.9, 2)
    return cv2.warpAffine(aligned, matrix, canvas, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def held_out_pictures(training_folder: str, held_out_folder: str, count: int, cache_dir: Optional[str]):
    """(names, aligned 178×218 pictures) of `count` faces of held_out_folder whose names the training folder lacks."""
    from PIL import Image

    trained_on = set(os.path.basename(str(name)) for name in
                     celeba_utils.load_faces(training_folder, cache_dir=cache_dir, progress=False).names)
    names = [name for name in sorted(os.listdir(held_out_folder)) if name not in trained_on][:count]
    pictures = []
    for name in names:
        with Image.open(os.path.join(held_out_folder, name)) as image:
            pictures.append(np.asarray(image.convert("RGB").resize(alignment.CELEBA_SIZE, Image.Resampling.LANCZOS)))
    return names, pictures


def project_photos(generator, discriminator, photos: Sequence[np.ndarray], truths: np.ndarray, align: bool,
                   random_faces: np.ndarray, **options) -> dict:
    """Project each photo; errors against the aligned truth (the training crop of the same face), the share
    refused, the time, and the faces (None where refused)."""
    errors, own, random_errors, best_random, seconds, faces, refused = [], [], [], [], [], [], []
    for index, (photo, truth) in enumerate(zip(photos, truths)):
        try:
            match = projection.project(generator, discriminator, photo, align=align, **options)
        except ValueError as error:  # no single face found, or no match clearly closer than a random face
            refused.append(str(error))
            faces.append(None)
            continue
        faces.append(match.face)
        errors.append(projection.rms_difference(match.face, truth))
        own.append(match.pixel_error)
        seconds.append(match.seconds)
        distances = projection.rms_difference(random_faces, truth)
        random_errors.append(float(distances[index % len(distances)]))
        best_random.append(float(distances.min()))
    mean = lambda values: round(float(np.mean(values)), 2) if values else None  # noqa: E731
    return dict(photos=len(photos), refused=len(refused), refused_share=round(len(refused) / len(photos), 3),
                refusals=refused[:5],
                projected_rms=mean(errors), projected_rms_own_crop=mean(own), random_z_rms=mean(random_errors),
                best_of_1000_random_rms=mean(best_random),
                seconds_per_projection=round(float(np.median(seconds)), 2) if seconds else None), faces


def likeness(faces, truths: np.ndarray, truth_features: np.ndarray, between: float) -> Optional[float]:
    """The median identity distance (Inception features) of each projected face to its truth, relative to two
    different real faces' distance."""
    kept = [index for index, face in enumerate(faces) if face is not None]
    if not kept:
        return None
    features = inception.inception_features(np.stack([faces[index] for index in kept]))
    return round(float(np.median(editing.identity_distances(features, truth_features[kept], between))), 3)


def measure_projection(generator, discriminator, classifier, pictures: Sequence[np.ndarray], out_dir: str,
                       most_seconds: float = 13.0) -> dict:
    """First error against time: each of PROJECTION_SETTINGS on the first SWEEP_PHOTOS aligned photos, and the best
    likeness among those within most_seconds a photo chosen. Then, with it: aligned photos, the same faces as
    people take them (wild_photo) aligned first, and the same without alignment (the centre crop): the three
    error rows, the likeness and the share refused."""
    truths = np.stack([celeba_utils.load_face(png_file(picture)) for picture in pictures])
    truth_features = inception.inception_features(truths)
    between = editing.median_distance_between(truth_features)
    random_faces = draw_faces(generator, seeds=range(400_000, 401_000))

    def options(starts, steps, weight):
        return dict(starts=starts, steps=steps, perceptual=classifier if weight else None, perceptual_weight=weight)

    sweep = []
    for starts, steps, weight in PROJECTION_SETTINGS:
        row, faces = project_photos(generator, discriminator, pictures[:SWEEP_PHOTOS], truths[:SWEEP_PHOTOS], True,
                                    random_faces, **options(starts, steps, weight))
        sweep.append(dict(starts=starts, steps=steps, perceptual_weight=weight, projected_rms=row["projected_rms"],
                          likeness=likeness(faces, truths[:SWEEP_PHOTOS], truth_features[:SWEEP_PHOTOS], between),
                          seconds_per_projection=row["seconds_per_projection"]))
    fast_enough = [row for row in sweep if row["seconds_per_projection"] <= most_seconds] or sweep
    chosen = min(fast_enough, key=lambda row: row["likeness"])
    settings = (chosen["starts"], chosen["steps"], chosen["perceptual_weight"])
    random = np.random.default_rng(0)
    wild = [wild_photo(picture, random) for picture in pictures]
    rows, shown = {}, []
    for label, photos, align in (("aligned CelebA faces", pictures, True), ("as people take them, aligned", wild, True),
                                 ("as people take them, centre crop (no alignment)", wild, False)):
        row, faces = project_photos(generator, discriminator, photos, truths, align, random_faces, **options(*settings))
        row["likeness"] = likeness(faces, truths, truth_features, between)
        rows[label] = row
        shown.append([face if face is not None else np.zeros_like(truths[0]) for face in faces[:8]])
    # the network's faces only: the photos are CelebA's, which the project does not publish
    picture = image_grid(np.concatenate([np.stack(row) for row in shown]), rows=3,
                                      columns=min(8, len(truths)))
    save_png(picture, os.path.join(out_dir, "projections.png"))
    return dict(settings=dict(zip(("starts", "steps", "perceptual_weight"), settings)), rows=rows,
                error_against_time=sweep, most_seconds=most_seconds,
                wild="scaled 0.7–1.6×, turned up to ±10°, moved off-centre on a canvas 1.4–2.2 times the picture "
                "(experiments.editing.wild_photo)")


# --------------------------------------------------------------------------------------------- tables

def edit_tables(edits: dict) -> list:
    """The canonical edits at each strength, then each attribute's range with the conditional edits beside."""
    unedited = edits["canonical"][0]
    lines = [f"Unedited faces ({unedited['faces']}): FID {unedited['fid']:.1f}, KID ×10³ "
             f"{1e3 * unedited['kid']:.1f}.", "",
             "| attribute | strength | moved the edit's way | change | positive after | others' change "
             "| other canonical attributes' change | identity distance | FID (× unedited) | KID ×10³ |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in edits["canonical"][1:]:
        lines.append(f"| {row['attribute']} | {row['strength']:+.0f} | {row['moved']:.0%} | {row['change']:+.3f} | "
                     f"{row['positive_share']:.0%} | {row['others']:.3f} | {row.get('held', 0):.3f} | "
                     f"{row['identity']:.2f} | {row['fid']:.1f} ({row['fid'] / unedited['fid']:.2f}×) | "
                     f"{1e3 * row['kid']:.1f} |")
    lines += ["", "| attribute | range (sliders) | moved at +range | moved at −range | others' change at ±range, "
              "free → conditional | other canonical attributes' change, free → conditional |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, limit in edits["ranges"].items():
        free = {row["strength"]: row for row in edits["canonical"] if row["attribute"] == name}
        held = {row["strength"]: row for row in edits["conditional"] if row["attribute"] == name}
        mean = lambda rows, key: np.mean([rows[s][key] for s in (-limit, limit)])  # noqa: E731
        lines.append(f"| {name} | ±{limit:.0f} | {free[limit]['moved']:.0%} | {free[-limit]['moved']:.0%} | "
                     f"{mean(free, 'others'):.3f} → {mean(held, 'others'):.3f} | "
                     f"{mean(free, 'held'):.3f} → {mean(held, 'held'):.3f} |")
    if edits.get("missing"):
        lines += ["", f"No direction for: {', '.join(edits['missing'])}."]
    return lines


def arithmetic_table(arithmetic: dict) -> list:
    """Brightness, contrast, realism and FID of the averaged faces and the results, plain and renormalised."""
    ordinary = arithmetic["ordinary faces"]
    lines = ["", f"| A − B + C, {arithmetic['results']} times | averaged faces: brightness, contrast | "
             "result: brightness, contrast | result: realism score (share ≥ 1) | result: FID |",
             "| --- | ---: | ---: | ---: | ---: |",
             f"| ordinary faces | {ordinary['brightness']:.0f}, {ordinary['contrast']:.0f} | | "
             f"{ordinary['realism']:.2f} ({ordinary['realistic']:.0%}) | {ordinary['fid']:.1f} |"]
    for label, row in arithmetic.items():
        if isinstance(row, dict) and "result" in row:
            result = row["result"]
            lines.append(f"| {label} | {row['averaged']['brightness']:.0f}, {row['averaged']['contrast']:.0f} | "
                         f"{result['brightness']:.0f}, {result['contrast']:.0f} | {result['realism']:.2f} "
                         f"({result['realistic']:.0%}) | {result['fid']:.1f} |")
    return lines


def projection_tables(projection: dict) -> list:
    """The photos projected three ways, then error against time for each setting tried."""
    lines = ["", "| photos | refused | RMS error against the aligned face (0–255) | against its own crop "
             "| a random z | the best of 1,000 random z | identity distance | seconds per photo |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in projection["rows"].items():
        cell = lambda value, form: format(value, form) if value is not None else "—"  # noqa: E731
        lines.append(f"| {name} ({row['photos']}) | {row['refused_share']:.0%} | "
                     f"{cell(row['projected_rms'], '.1f')} | {cell(row['projected_rms_own_crop'], '.1f')} | "
                     f"{cell(row['random_z_rms'], '.1f')} | "
                     f"{cell(row['best_of_1000_random_rms'], '.1f')} | {cell(row['likeness'], '.2f')} | "
                     f"{cell(row['seconds_per_projection'], '.1f')} |")
    lines += ["", "| starts | Adam steps | perceptual weight | RMS error | identity distance | seconds per photo |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in projection["error_against_time"]:
        lines.append(f"| {row['starts']} | {row['steps']} | {row['perceptual_weight']:g} | "
                     f"{row['projected_rms']:.1f} | {row['likeness']:.2f} | {row['seconds_per_projection']:.1f} |")
    return lines


def comparison_tables(earlier: dict, later: dict) -> list:
    """Two measured networks side by side (each cell earlier → later, the networks named by the images they saw):
    each canonical attribute's range, the faces called positive at −3 and +3, the identity distance at ±1 and the
    FID at ±3 over the unedited faces'; then the unedited faces, the classifier, arithmetic and projection."""
    seen = [f"{results['network']['images_seen']:,}" for results in (earlier, later)]
    pair = lambda values, form: " → ".join(format(value, form) for value in values)  # noqa: E731
    both = (earlier, later)

    def edit(results, name, strength, key):
        return next(row[key] for row in results["edits"]["canonical"]
                    if row["attribute"] == name and row["strength"] == strength)

    def fid_ratio(results, name, strength):
        return edit(results, name, strength, "fid") / results["edits"]["canonical"][0]["fid"]

    lines = ["", f"Each cell: the network after {seen[0]} images → after {seen[1]}.", "",
             "| attribute | range (sliders) | positive after −3 | positive after +3 | identity distance at ±1 "
             "| FID at −3, × unedited | FID at +3, × unedited |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in [name for name in earlier["edits"]["ranges"] if name in later["edits"]["ranges"]]:
        lines.append(
            f"| {name} | {' → '.join('±%.0f' % results['edits']['ranges'][name] for results in both)} | "
            f"{pair([edit(results, name, -3.0, 'positive_share') for results in both], '.0%')} | "
            f"{pair([edit(results, name, 3.0, 'positive_share') for results in both], '.0%')} | "
            f"{pair([np.mean([edit(results, name, s, 'identity') for s in (-1.0, 1.0)]) for results in both], '.2f')}"
            f" | {pair([fid_ratio(results, name, -3.0) for results in both], '.2f')} | "
            f"{pair([fid_ratio(results, name, 3.0) for results in both], '.2f')} |")
    accuracy = [np.mean([row["accuracy"] for row in results["classifier"].values()]) for results in both]
    lines += ["", "| measured | " + " | ".join(f"after {images} images" for images in seen) + " |",
              "| --- | ---: | ---: |",
              "| unedited faces: FID (200 faces, held-out reference) | "
              + " | ".join(f"{results['edits']['canonical'][0]['fid']:.1f}" for results in both) + " |",
              "| classifier: mean accuracy over 40 attributes | " + " | ".join(f"{value:.3f}" for value in accuracy)
              + " |"]
    if all(results.get("arithmetic") for results in both):
        for label in ("ordinary faces", "3 exemplars, renormalised"):
            rows = [results["arithmetic"][label] for results in both]
            rows = [row.get("result", row) for row in rows]
            lines.append(f"| arithmetic, {label}: realism score (share ≥ 1) | " + " | ".join(
                f"{row['realism']:.2f} ({row['realistic']:.0%})" for row in rows) + " |")
    if all(results.get("projection") for results in both):
        for label in ("aligned CelebA faces", "as people take them, aligned"):
            rows = [results["projection"]["rows"][label] for results in both]
            lines.append(f"| projection, {label}: RMS error, identity distance | " + " | ".join(
                f"{row['projected_rms']:.1f}, {row['likeness']:.2f}" for row in rows) + " |")
    return lines


def tables(results: dict, earlier: Optional[dict] = None) -> str:
    """docs/editing's tables as Markdown, from results.json: the canonical edits at each strength, the
    conditional edits, the ranges, arithmetic, projection and its error against time; given an earlier
    network's results.json, the two compared last."""
    lines = []
    for key, section in (("edits", edit_tables), ("arithmetic", arithmetic_table), ("projection", projection_tables)):
        if results.get(key):
            lines += section(results[key])
    if earlier is not None and earlier.get("edits") and results.get("edits"):
        lines += comparison_tables(earlier, results)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- all of it

def describe_network(checkpoint_dir: str, step: int, generator: str, held_out_folder: str) -> dict:
    """What the measured network is: its data, seed, images seen and training precision (its starts.jsonl), the
    generator drawn, the real faces it is judged against, and the attribute classifier's settings (without its
    list of attributes)."""
    config, starts = runs.read_config(checkpoint_dir), runs.read_starts(checkpoint_dir)
    with open(os.path.join(checkpoint_dir, "attributes", attributes.SETTINGS_FILE)) as handle:
        judge = {key: value for key, value in json.load(handle).items() if key != "attributes"}
    return dict(data=config.data.image_path, seed=config.training.seed, steps=step,
                images_seen=step * config.training.batch_size, generator=generator,
                precision=starts[-1]["precision"] if starts else f"{config.networks.precision} (no starts.jsonl)",
                reference=held_out_folder, reference_faces=records.SAMPLES, classifier=judge)


def measure(checkpoint_dir: str, data: Sequence[str], held_out_folder: str, out_dir: str, faces: int = 200,
            projections: int = 30, cache_dir: Optional[str] = None, parts: Sequence[str] = ("edits", "arithmetic",
                                                                                              "projection")) -> dict:
    """Each part of docs/editing not yet in OUT/results.json (the module's doc)."""
    os.makedirs(out_dir, exist_ok=True)
    gan, _ = runs.load_gan(checkpoint_dir)
    generator, classifier, names, directions = editing.prepare_run(checkpoint_dir, data, cache_dir)
    results = records.read_json(os.path.join(out_dir, "results.json"), {})
    if "classifier" not in results:
        with open(os.path.join(checkpoint_dir, "attributes", attributes.ACCURACY_FILE)) as handle:
            records.save_part(out_dir, "classifier", json.load(handle))
        records.save_part(out_dir, "directions", dict(zip(directions.names, [round(float(value), 3)
                                                                     for value in directions.boundary_accuracy])))
        results = records.save_part(out_dir, "checkpoint_step", int(gan.step.numpy()))
    if "network" not in results:  # what the measured network was trained on, and the faces it is judged against
        results = records.save_part(out_dir, "network", describe_network(
            checkpoint_dir, int(gan.step.numpy()), generator.name, held_out_folder))
    real = celeba_utils.load_faces(held_out_folder, cache_dir=cache_dir, progress=False).images
    sample = maths.real_sample(real, records.SAMPLES, records.JUDGE_SEED)
    real_features = inception.reference_features(sample, f"held-out-{len(real)}", cache_dir)
    if "edits" in parts and "edits" not in results:
        started = time.perf_counter()
        edits = measure_all_edits(generator, classifier, names, directions, real_features, faces)
        edits["ranges"] = editing.choose_ranges(edits["canonical"], REALISM_RATIO)
        edits["seconds"] = round(time.perf_counter() - started)
        results = records.save_part(out_dir, "edits", edits)
    if "edits" in results:
        directions = directions.with_ranges(results["edits"]["ranges"])
        editing.save_directions(directions, checkpoint_dir)
        save_png(edit_grid(generator, directions, results["edits"]["ranges"]), os.path.join(out_dir, "edits.png"))
    if "arithmetic" in parts and "arithmetic" not in results:
        measured = measure_arithmetic(generator, classifier, names, real_features, out_dir)
        results = records.save_part(out_dir, "arithmetic", measured)
    if "projection" in parts and "projection" not in results:
        _, pictures = held_out_pictures(data[0], held_out_folder, projections, cache_dir)
        measured = measure_projection(generator, gan.discriminator, classifier, pictures, out_dir)
        results = records.save_part(out_dir, "projection", measured)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="my_net")
    parser.add_argument("--data", nargs="+", required=True, help="CelebA folders the classifier trains on")
    parser.add_argument("--held-out", required=True, help="a folder of CelebA's aligned faces the run never "
                        "trained on: the real faces of realism, and the photos projected")
    parser.add_argument("--out", required=True, help="where results.json and the pictures go (docs/editing for "
                        "the published ones)")
    parser.add_argument("--faces", type=int, default=200, help="generated faces each edit is measured on")
    parser.add_argument("--projections", type=int, default=30, help="photos projected, each three ways")
    parser.add_argument("--parts", default="edits,arithmetic,projection")
    parser.add_argument("--against", help="another network's --out folder (docs/editing): tables.md compares "
                        "the two")
    add_arguments(parser, ("cache_dir",))
    arguments = parser.parse_args()
    earlier = None
    if arguments.against:
        earlier = records.read_json(os.path.join(arguments.against, "results.json"), None)
        if earlier is None:
            parser.error(f"--against {arguments.against}: no results.json there; give the --out folder of an "
                         "earlier python -m experiments.editing")
    results = measure(arguments.checkpoint, arguments.data, arguments.held_out, arguments.out, arguments.faces,
                      arguments.projections, arguments.cache_dir, arguments.parts.split(","))
    with atomic_write(os.path.join(arguments.out, "tables.md"), "w") as handle:
        handle.write(tables(results, earlier))
    print(json.dumps({key: value for key, value in results.items() if key not in ("classifier", "edits")},
                     indent=1))


if __name__ == "__main__":
    main()
