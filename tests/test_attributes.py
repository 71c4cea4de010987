"""attributes: the classifier learns a visible attribute of drawn faces, scores it against the majority label on
held-out faces, saves and reloads; with the CelebA sample, it learns real attributes."""

import json
import re

import numpy as np
import pytest

from facegan import attributes
from conftest import ROOT, drawn_face, write_attribute_list

NAMES = ("5_o_Clock_Shadow", "Pale_Skin", "Smiling", "Young")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """400 drawn faces with a list_attr_celeba.txt beside their folder."""
    root = tmp_path_factory.mktemp("labelled")
    (root / "img_align_celeba").mkdir()
    for seed in range(1, 401):
        drawn_face(seed).save(root / "img_align_celeba" / f"{seed:06d}.jpg", quality=92)
    write_attribute_list(root / "list_attr_celeba.txt", range(1, 401), NAMES)
    return root


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("classifier")
    settings = attributes.ClassifierSettings(width=8, epochs=8, batch_size=32, learning_rate=3e-3)
    accuracy = attributes.train_classifier([str(labelled / "img_align_celeba")], str(out), settings, cache_dir,
                                           show=False)
    return out, accuracy


@pytest.mark.slow
def test_the_classifier_learns_what_the_faces_show_and_scores_it_on_faces_it_never_saw(trained, labelled):
    out, accuracy = trained
    assert list(accuracy) == list(NAMES)
    for name in ("Smiling", "Pale_Skin"):  # drawn, so learnable: better than always answering the majority
        assert accuracy[name]["accuracy"] > accuracy[name]["majority"] + 0.1, accuracy[name]
    settings = json.loads((out / attributes.SETTINGS_FILE).read_text())
    assert settings["held_out"].startswith("10% of the faces") and settings["scored_on"] + settings["trained_on"] == 400
    assert 20 <= settings["scored_on"] <= 60
    assert "| Smiling |" in attributes.accuracy_table(accuracy)


@pytest.mark.slow
def test_a_saved_classifier_gives_the_same_probabilities_after_loading(trained, labelled, cache_dir):
    out, _ = trained
    classifier, names = attributes.load_classifier(str(out))
    faces, labels, _, _ = attributes.labelled_faces([str(labelled / "img_align_celeba")], cache_dir=cache_dir)
    first = attributes.probabilities(classifier, faces[:20])
    again = attributes.probabilities(attributes.load_classifier(str(out))[0], faces[:20])
    np.testing.assert_allclose(first, again, rtol=1e-6)
    assert names == list(NAMES) and first.shape == (20, 4) and ((first >= 0) & (first <= 1)).all()


def test_held_out_faces_are_the_validation_partition_when_there_is_one(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    names = [f"{index:06d}.jpg" for index in range(1, 301)]
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{name} {1 if index >= 150 else 0}\n"
                                                              for index, name in enumerate(names)))
    mask, how = attributes.held_out_mask(names, str(tmp_path / "img_align_celeba"))
    assert how == "CelebA's validation partition" and mask.sum() == 150 and not mask[:150].any()
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{name} 0\n" for name in names))
    mask, how = attributes.held_out_mask(names, str(tmp_path / "img_align_celeba"))
    assert how.startswith("10%") and 10 < mask.sum() < 60
    assert np.array_equal(mask, attributes.held_out_mask(names, str(tmp_path / "img_align_celeba"))[0])


def test_without_a_classifier_the_message_says_how_to_train_one_with_commands_that_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="No attribute classifier in") as refused:
        attributes.load_classifier(str(tmp_path))
    commands = re.findall(r"python (?:-m )?([\w./]+)", str(refused.value))
    assert commands, str(refused.value)
    for command in commands:  # a script at the top, or a module of the package with a command line
        path = ROOT / (command if command.endswith(".py") else command.replace(".", "/") + ".py")
        assert path.is_file() and "__main__" in path.read_text(), f"{command} named in the message does not run"


@pytest.mark.slow
def test_on_real_celeba_faces_the_classifier_beats_the_majority_on_smiling(celeba, tmp_path, cache_dir):
    settings = attributes.ClassifierSettings(width=16, epochs=2)
    accuracy = attributes.train_classifier([str(celeba / "img_align_celeba")], str(tmp_path), settings, cache_dir,
                                           show=False)
    assert len(accuracy) == 40
    assert accuracy["Smiling"]["accuracy"] > accuracy["Smiling"]["majority"] + 0.1, accuracy["Smiling"]


def test_augment_mirrors_every_face_or_none_and_softens_the_share_asked():
    import tensorflow as tf

    faces = tf.random.stateless_uniform((64, 64, 64, 3), (3, 4), -1, 1)  # noise: all of its detail is fine detail

    def detail(images):  # the mean squared difference between neighbouring pixels
        return np.mean(np.diff(np.asarray(images), axis=2) ** 2, axis=(1, 2, 3))

    plain = attributes.augment(faces).numpy()
    mirrored = [np.array_equal(out, np.asarray(face)[:, ::-1]) for out, face in zip(plain, faces)]
    same = [np.array_equal(out, np.asarray(face)) for out, face in zip(plain, faces)]
    assert all(m or s for m, s in zip(mirrored, same)) and 10 < sum(mirrored) < 54
    softened = detail(attributes.augment(faces, soften=0.5)) < detail(faces) / 2
    assert 10 < softened.sum() < 54  # about half the faces blurred, the others untouched
    assert (detail(attributes.augment(faces, soften=1.0)) < detail(faces) / 2).all()
