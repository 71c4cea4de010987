"""Which of CelebA's 40 attributes a face shows: a small Keras CNN trained on real 64×64 faces and CelebA's labels.

    python -m facegan.attributes --data path/to/img_align_celeba   # or python directions.py, which trains it too

It labels generated faces, so that facegan/editing.py can find attribute directions in z (InterFaceGAN). Faces are
cropped and scaled as training faces are (celeba_utils.load_faces), labels come from list_attr_celeba.txt beside the
folders. Faces held out from training score it: CelebA's validation partition when the folders hold it, else a
fixed tenth of the faces chosen by file name. It is saved in `checkpoint_dir/attributes/` (the classifier, its
settings.json and accuracy.json: per attribute, its accuracy against always answering the majority label).
"""

import argparse
import dataclasses
import hashlib
import json
import os
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

import celeba_utils
from facegan.images import atomic_write, to_float

CLASSIFIER_FILE = "classifier.weights.h5"
SETTINGS_FILE = "settings.json"
ACCURACY_FILE = "accuracy.json"
# The attributes every editing demo shows first (InterFaceGAN's among them): measured first, the explorer's sliders
# when a run has their directions, and what attribute coverage is judged on
CANONICAL = ("Smiling", "Male", "Eyeglasses", "Young", "Blond_Hair", "Bangs", "Wearing_Hat")


@dataclasses.dataclass
class ClassifierSettings:
    image_size: int = 64
    width: int = 32  # channels of the first convolution, doubled at each of the four that follow
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    # the share of training faces blurred (augment): a judge of what faces show, not how sharp they are. 0.5: as
    # accurate on real faces, and a quarter of the bias on blurred ones (docs/metrics.md)
    soften: float = 0.5
    attributes: Sequence[str] = ()  # filled from list_attr_celeba.txt
    held_out: str = ""  # how the faces that score it were chosen
    trained_on: int = 0
    scored_on: int = 0


def build_classifier(settings: ClassifierSettings) -> keras.Model:
    """64×64 face in [-1, 1] → one logit per attribute: five 3×3 convolutions (the first at full resolution, the
    other four strided) with batch norm and ReLU,
    global average pooling, one dense layer."""
    image = keras.Input((settings.image_size, settings.image_size, 3), name="image")
    x = image
    for index in range(5):
        x = keras.layers.Conv2D(settings.width * 2 ** min(index, 3), 3, strides=2 if index else 1, padding="same",
                                use_bias=False, name=f"conv{index + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"conv{index + 1}_bn")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(len(settings.attributes), name="logits")(x)
    return keras.Model(image, logits, name="attribute_classifier")


# --------------------------------------------------------------------------------------------- data

def labelled_faces(folders: Sequence[str], attribute_file: Optional[str] = None, cache_dir: Optional[str] = None,
                   progress: bool = False):
    """(faces uint8, labels (n, 40) of 0/1, base file names, attribute names) of the faces in the folders that
    list_attr_celeba.txt names; a file named in two folders (the same face at two resolutions) is kept once."""
    table = celeba_utils.read_attributes(attribute_file or celeba_utils.find_list(folders[0], "list_attr_celeba.txt"))
    row_of = {name: row for row, name in enumerate(table.files)}
    images, labels, names, seen = [], [], [], set()
    for folder in folders:
        faces = celeba_utils.load_faces(folder, cache_dir=cache_dir, progress=progress)
        for image, name in zip(faces.images, faces.names):
            base = os.path.basename(str(name))
            if base in row_of and base not in seen:
                seen.add(base)
                images.append(image)
                labels.append(table.values[row_of[base]] > 0)
                names.append(base)
    if not images:
        raise ValueError(f"None of the faces in {', '.join(folders)} is named in the attribute list: the classifier "
                         "needs CelebA's own files and list_attr_celeba.txt")
    return np.stack(images), np.stack(labels).astype(np.float32), np.array(names), table.names


def held_out_mask(names: Sequence[str], image_path: str, fraction: float = 0.1):
    """(mask, how): CelebA's validation partition when the faces include some, else a fixed `fraction` of them
    chosen by a hash of the file name (the same faces on every machine)."""
    try:
        partitions = celeba_utils.read_partitions(celeba_utils.find_list(image_path, "list_eval_partition.txt"))
        mask = np.array([partitions.get(name) == celeba_utils.PARTITIONS["validation"] for name in names])
        if mask.sum() >= 100:
            return mask, "CelebA's validation partition"
    except FileNotFoundError:
        pass
    hashed = np.array([int(hashlib.sha256(str(name).encode()).hexdigest()[:8], 16) / 16 ** 8 for name in names])
    return hashed < fraction, f"{fraction:.0%} of the faces, chosen by a hash of the file name"


# --------------------------------------------------------------------------------------------- training and use

def train_classifier(folders: Sequence[str], out_dir: str = os.path.join("my_net", "attributes"),
                     settings: Optional[ClassifierSettings] = None, cache_dir: Optional[str] = None,
                     show: bool = True) -> Dict[str, dict]:
    """Train on the faces of `folders` not held out, score on those held out, save; returns the accuracy table."""
    settings = settings or ClassifierSettings()
    images, labels, names, attribute_names = labelled_faces(folders, cache_dir=cache_dir, progress=show)
    held_out, how = held_out_mask(names, folders[0])
    settings = dataclasses.replace(settings, attributes=list(attribute_names), held_out=how,
                                   trained_on=int((~held_out).sum()), scored_on=int(held_out.sum()))
    keras.utils.set_random_seed(settings.seed)
    classifier = build_classifier(settings)
    classifier.compile(keras.optimizers.Adam(settings.learning_rate),
                       loss=keras.losses.BinaryCrossentropy(from_logits=True))
    train = (tf.data.Dataset.from_tensor_slices((images[~held_out], labels[~held_out]))
             .shuffle(len(names), seed=settings.seed).batch(settings.batch_size)
             .map(lambda x, y: (augment(to_float(x), settings.soften), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    classifier.fit(train, epochs=settings.epochs, verbose=2 if show else 0, shuffle=False)
    accuracy = score_classifier(classifier, images[held_out], labels[held_out], labels[~held_out], attribute_names)
    save_classifier(classifier, settings, accuracy, out_dir)
    return accuracy


def augment(images, soften: float = 0.0):
    """Left-right flips: every attribute of a face is unchanged by a mirror. With soften > 0, that share of the
    faces is also blurred by a trip through a smaller size (16 to 63 pixels a side, one size per batch), so that
    the classifier learns attributes from what a face shows, not from how sharp it is: generated faces are softer
    than real ones, and a classifier trained on sharp faces alone calls soft faces young and female more often."""
    images = tf.where(tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < 0.5, tf.reverse(images, axis=[2]), images)
    if not soften:
        return images
    size = images.shape[1]
    small = tf.random.uniform((), 16, size, dtype=tf.int32)
    softened = tf.image.resize(tf.image.resize(images, tf.stack([small, small]), antialias=True), (size, size))
    return tf.where(tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < soften, softened, images)


def probabilities(classifier: keras.Model, faces, batch_size: int = 256) -> np.ndarray:
    """(n, attributes) probabilities for uint8 faces or floats in [-1, 1]."""
    faces = np.asarray(faces)
    faces = to_float(faces).numpy() if faces.dtype == np.uint8 else faces.astype(np.float32)
    logits = [classifier(faces[start:start + batch_size], training=False).numpy()
              for start in range(0, len(faces), batch_size)]
    return 1 / (1 + np.exp(-np.concatenate(logits))) if logits else np.zeros((0, classifier.output_shape[-1]))


def score_classifier(classifier, images, labels, training_labels, attribute_names) -> Dict[str, dict]:
    """Per attribute: accuracy on the held-out faces, and the accuracy of always answering the label most
    frequent among the training faces (the majority baseline)."""
    predicted = probabilities(classifier, images) > 0.5
    majority = training_labels.mean(axis=0) > 0.5
    return {name: dict(accuracy=round(float(np.mean(predicted[:, index] == labels[:, index])), 4),
                       majority=round(float(np.mean(labels[:, index] == majority[index])), 4),
                       positive_share=round(float(labels[:, index].mean()), 4))
            for index, name in enumerate(attribute_names)}


def save_classifier(classifier, settings: ClassifierSettings, accuracy: Dict[str, dict], out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    temporary = os.path.join(out_dir, ".classifier.tmp.weights.h5")
    classifier.save_weights(temporary)
    os.replace(temporary, os.path.join(out_dir, CLASSIFIER_FILE))
    for name, content in ((SETTINGS_FILE, dataclasses.asdict(settings)), (ACCURACY_FILE, accuracy)):
        with atomic_write(os.path.join(out_dir, name), "w") as handle:
            json.dump(content, handle, indent=1)


def load_classifier(folder: str = os.path.join("my_net", "attributes")):
    """(classifier, attribute names) saved by train_classifier."""
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No attribute classifier in {os.path.abspath(folder)}: train one first "
                                "(python directions.py --checkpoint <the run> --data <CelebA folders>, which trains it "
                                "into the run's attributes/, or python -m facegan.attributes --data <CelebA folders> "
                                "--out <folder>)")
    with open(path) as handle:
        settings = ClassifierSettings(**json.load(handle))
    classifier = build_classifier(settings)
    classifier.load_weights(os.path.join(folder, CLASSIFIER_FILE))
    return classifier, list(settings.attributes)


def accuracy_table(accuracy: Dict[str, dict]) -> str:
    """The accuracy of each attribute against the majority baseline, as Markdown, best gain first."""
    lines = ["| attribute | accuracy | majority baseline | gain | share positive |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, row in sorted(accuracy.items(), key=lambda item: item[1]["majority"] - item[1]["accuracy"]):
        lines.append(f"| {name} | {row['accuracy']:.3f} | {row['majority']:.3f} | "
                     f"{row['accuracy'] - row['majority']:+.3f} | {row['positive_share']:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="folders (or zips) of CelebA's aligned faces")
    parser.add_argument("--out", default=os.path.join("my_net", "attributes"))
    parser.add_argument("--epochs", type=int, default=ClassifierSettings.epochs)
    parser.add_argument("--soften", type=float, default=ClassifierSettings.soften,
                        help="the share of training faces blurred, for a judge of softer (generated) faces")
    parser.add_argument("--cache-dir")
    arguments = parser.parse_args()
    accuracy = train_classifier(arguments.data, arguments.out,
                                ClassifierSettings(epochs=arguments.epochs, soften=arguments.soften),
                                arguments.cache_dir)
    print(accuracy_table(accuracy))


if __name__ == "__main__":
    main()
