"""experiments/editing.py: photos made wild as people take them, the measured parts saved as they finish, and the
projection rows counting refusals; on a tiny network and matplotlib's sample portrait (no CelebA needed)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from matplotlib import cbook
from PIL import Image

import celeba_utils
from facegan.images import png_file
from experiments import editing as measuring
from facegan import alignment, drawing
from facegan.config import Config
from facegan.gan import DCGAN
from conftest import TINY
from test_alignment import assert_where_celeba_holds_faces


@pytest.fixture(scope="module")
def celeba_like():
    """Grace Hopper's portrait at CelebA's aligned size (the face where CelebA holds faces)."""
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return alignment.align_face(np.asarray(Image.open(handle).convert("RGB")))


def test_a_wild_photo_is_bigger_moved_and_turned_and_alignment_brings_it_back(celeba_like):
    random = np.random.default_rng(4)
    for _ in range(3):
        wild = measuring.wild_photo(celeba_like, random)
        assert wild.shape[0] > 1.3 * 0.7 * 218 and wild.shape != celeba_like.shape
        assert not np.array_equal(celeba_utils.load_face(png_file(wild)),
                                  celeba_utils.load_face(png_file(celeba_like)))
        assert_where_celeba_holds_faces(alignment.align_face(wild))


def test_projection_rows_count_refusals_and_measure_against_the_truth(celeba_like):
    tf.keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**TINY))
    generator = drawing.ready_generator(gan)
    truth_face = drawing.draw_faces(generator, seeds=[7])[0]
    photos = [truth_face, np.full((218, 178, 3), 128, np.uint8)]  # a face the network draws, then a grey wall
    truths = np.stack([truth_face, truth_face])
    row, faces = measuring.project_photos(generator, gan.discriminator, photos, truths, True,
                                          drawing.draw_faces(generator, seeds=range(50)), starts=2, steps=60)
    assert (row["photos"], row["refused"], row["refused_share"]) == (2, 1, 0.5)
    assert "flat colour" in row["refusals"][0] and faces[1] is None
    assert row["projected_rms"] < row["random_z_rms"] and row["best_of_1000_random_rms"] <= row["random_z_rms"]


def test_the_tables_show_each_edit_against_the_unedited_faces_and_the_ranges_both_ways():
    row = lambda strength, fid, **extra: dict(attribute="Smiling", strength=strength, moved=0.9, change=0.2 * strength,  # noqa: E731
                                              positive_share=0.5, others=0.1, held=0.05, identity=0.3, fid=fid,
                                              kid=0.05, **extra)
    edits = dict(canonical=[dict(attribute=None, strength=0.0, faces=200, fid=80.0, kid=0.04),
                            row(-1.0, 84.0), row(1.0, 88.0), row(-2.0, 130.0), row(2.0, 100.0)],
                 conditional=[row(-1.0, 84.0, conditional=True), row(1.0, 88.0, conditional=True)])
    edits["ranges"] = measuring.editing.choose_ranges(edits["canonical"])
    text = measuring.tables(dict(edits=edits))
    assert edits["ranges"] == {"Smiling": 1.0}  # −2 reaches 130 > 1.5 × 80
    assert "| Smiling | +1 | 90% | +0.200 |" in text and "88.0 (1.10×)" in text and "130.0 (1.62×)" in text
    assert "| Smiling | ±1 | 90% | 90% |" in text


def measured_results(images_seen: int, ranges: dict, positive_at_three: float, identity: float, fid_at_three: float):
    """A results.json of experiments.editing for one attribute, Smiling: the unedited faces at FID 100."""
    canonical = [dict(attribute=None, strength=0.0, faces=200, fid=100.0, kid=0.05)]
    for strength in (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0):
        canonical.append(dict(attribute="Smiling", strength=strength, moved=0.9, change=0.1 * strength,
                              positive_share=positive_at_three if strength == 3.0 else 0.0, others=0.05, held=0.04,
                              identity=identity * abs(strength), kid=0.05,
                              fid=fid_at_three if abs(strength) == 3.0 else 100.0))
    return dict(network=dict(images_seen=images_seen), classifier={"Smiling": dict(accuracy=0.9)},
                edits=dict(canonical=canonical, conditional=[dict(row, conditional=True) for row in canonical[1:]],
                           ranges=ranges))


def test_two_networks_are_compared_attribute_by_attribute_earlier_then_later():
    earlier = measured_results(96_000, {"Smiling": 1.0}, 0.06, 0.5, 250.0)
    later = measured_results(800_000, {"Smiling": 3.0}, 0.64, 0.3, 140.0)
    text = measuring.tables(later, earlier)
    assert "after 96,000 images → after 800,000" in text
    assert "| Smiling | ±1 → ±3 | 0% → 0% | 6% → 64% | 0.50 → 0.30 | 2.50 → 1.40 | 2.50 → 1.40 |" in text
    assert "| unedited faces: FID (200 faces, held-out reference) | 100.0 | 100.0 |" in text
    assert "→ after" not in measuring.tables(later)  # one network alone: no comparison


def test_the_network_is_described_with_its_training_precision_and_its_judge(tmp_path):
    from facegan import runs

    config = Config(checkpoint_dir=str(tmp_path / "my_net"), seed=3, batch_size=50, **{
        key: value for key, value in TINY.items() if key != "batch_size"})
    os.makedirs(config.outputs.checkpoint_dir)
    runs.write_config(config)
    os.makedirs(tmp_path / "my_net" / "attributes")
    (tmp_path / "my_net" / "attributes" / "settings.json").write_text(json.dumps(dict(soften=0.5, attributes=["Male"])))
    described = measuring.describe_network(config.outputs.checkpoint_dir, 40, "average", "held_out/")
    assert (described["images_seen"], described["seed"], described["classifier"]) == (2000, 3, {"soften": 0.5})
    assert described["precision"] == "float32 (no starts.jsonl)"  # a copied run without its history says so
    runs.record_start(config, 0)
    assert measuring.describe_network(config.outputs.checkpoint_dir, 40, "average", "held_out/")["precision"] \
        == "float32"
