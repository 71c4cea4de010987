"""What docs/editing reports, measured on a trained run: the attribute classifier, the directions fitted for the
run's generator, the effect of editing along them, vector arithmetic, and projecting photos the run never saw.

    python -m experiments.editing --checkpoint my_net --data ../shared/celeba/img_align_celeba \
        ../shared/celeba/img_align_celeba_89x109 --held-out ../shared/celeba/img_align_celeba_89x109 \
        --out docs/editing

It writes OUT/results.json, edits.png, arithmetic.png and projections.png, and only into OUT.
"""

import argparse
import json
import os
from typing import Optional, Sequence

import numpy as np

import celeba_utils
from facegan import attributes, devices, editing, runs
from facegan.drawing import ReadyGenerator, draw_faces, seed_vector


def measure(checkpoint_dir: str, data: Sequence[str], held_out_folder: str, out_dir: str, edited: int = 12,
            faces: int = 200, projections: int = 100, cache_dir: Optional[str] = None) -> dict:
    """What docs/editing/ reports, for a trained run: the classifier (trained into checkpoint_dir/attributes if
    it is not there), directions fitted for the run's network, the effect of the `edited` best-separated
    directions on `faces` faces from −3 to +3 with a grid, and `projections` photos of held_out_folder that are
    not in data[0] projected, against a random z and the best of 1,000 random z."""
    os.makedirs(out_dir, exist_ok=True)
    gan, _ = runs.load_gan(checkpoint_dir)
    generator, classifier, names, directions = editing.prepare_run(checkpoint_dir, data, cache_dir)
    with open(os.path.join(checkpoint_dir, "attributes", attributes.ACCURACY_FILE)) as handle:
        accuracy = json.load(handle)
    chosen = directions.strongest(edited)
    effects = editing.edit_effects(generator, classifier, names, directions, faces=faces, attributes_to_edit=chosen)
    strengths = [-3, -2, -1, 0, 1, 2, 3]
    rows = [draw_faces(generator, editing.along_direction(seed_vector(300_000 + row, generator.z_dim), directions,
                                                          name, strengths))
            for row, name in enumerate(chosen[:6])]
    celeba_utils.save_png(celeba_utils.image_grid(np.concatenate(rows), rows=len(rows), columns=len(strengths)),
                          os.path.join(out_dir, "edits.png"))
    # A − B + C with exemplars chosen by the classifier: smiling women − neutral women + neutral men
    z, _, probability = editing.label_generated_faces(generator, classifier, 2000, 500_000)
    smiling, male = probability[:, names.index("Smiling")], probability[:, names.index("Male")]
    pick = lambda mask: list(z[np.flatnonzero(mask)[:3]])  # noqa: E731
    _, picture = editing.arithmetic(generator, a=pick((smiling > 0.8) & (male < 0.2)),
                                    b=pick((smiling < 0.2) & (male < 0.2)), c=pick((smiling < 0.2) & (male > 0.8)))
    celeba_utils.save_png(picture, os.path.join(out_dir, "arithmetic.png"))
    projection = measure_projection(generator, gan.discriminator, data[0], held_out_folder, projections, out_dir,
                                    cache_dir)
    results = dict(checkpoint_step=int(gan.step.numpy()), classifier=accuracy, directions=dict(
        zip(directions.names, [round(float(value), 3) for value in directions.boundary_accuracy])),
        edits=effects, projection=projection)
    with celeba_utils.atomic_write(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    return results


def measure_projection(generator: ReadyGenerator, discriminator, training_folder: str, held_out_folder: str,
                       count: int, out_dir: str, cache_dir: Optional[str] = None) -> dict:
    """Project `count` faces of held_out_folder whose names are not in training_folder; compare the mean pixel
    error with a random z's and with the best of 1,000 random z's, and time one projection."""
    trained_on = set(os.path.basename(str(name)) for name in
                     celeba_utils.load_faces(training_folder, cache_dir=cache_dir, progress=False).names)
    held_out = celeba_utils.load_faces(held_out_folder, cache_dir=cache_dir, progress=False)
    chosen = [index for index, name in enumerate(held_out.names) if os.path.basename(str(name)) not in trained_on]
    chosen = chosen[:count]
    random_faces = draw_faces(generator, seeds=range(400_000, 401_000))
    errors, random_errors, best_random, seconds, refused, shown = [], [], [], [], 0, []
    for index in chosen:
        photo = held_out.images[index]
        try:
            projection = editing.project(generator, discriminator, photo)
        except ValueError:
            refused += 1
            continue
        errors.append(projection.pixel_error)
        seconds.append(projection.seconds)
        distances = np.sqrt(((random_faces.astype(np.float32) - photo.astype(np.float32)) ** 2).mean(axis=(1, 2, 3)))
        random_errors.append(float(distances[0]))
        best_random.append(float(distances.min()))
        if len(shown) < 8:
            shown += [photo, projection.face]
    if shown:  # photos on top, their projections below
        picture = celeba_utils.image_grid(np.stack(shown[0::2] + shown[1::2]), rows=2, columns=len(shown) // 2)
        celeba_utils.save_png(picture, os.path.join(out_dir, "projections.png"))
    return dict(photos=len(chosen), refused=refused, projected_rms=round(float(np.mean(errors)), 2),
                random_z_rms=round(float(np.mean(random_errors)), 2),
                best_of_1000_random_rms=round(float(np.mean(best_random)), 2),
                seconds_per_projection=round(float(np.median(seconds)), 2), machine=devices.machine())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="my_net")
    parser.add_argument("--data", nargs="+", required=True, help="CelebA folders the classifier trains on")
    parser.add_argument("--held-out", required=True, help="a folder of faces to project (those not in --data's first)")
    parser.add_argument("--out", required=True, help="where results.json and the pictures go (docs/editing for "
                        "the published ones)")
    parser.add_argument("--projections", type=int, default=100)
    parser.add_argument("--cache-dir")
    arguments = parser.parse_args()
    results = measure(arguments.checkpoint, arguments.data, arguments.held_out, arguments.out,
                      projections=arguments.projections, cache_dir=arguments.cache_dir)
    print(json.dumps({key: value for key, value in results.items() if key != "classifier"}, indent=1))


if __name__ == "__main__":
    main()
