"""experiments/data_size: a tiny measurement of both data sets scored against both
references, resumed without training again."""

import json

import pytest
from PIL import Image

from experiments import data_size, records
from conftest import TINY, made_celeba


@pytest.mark.slow
def test_each_run_is_scored_against_the_held_out_and_its_training_faces_and_resumes(tmp_path, cache_dir):
    celeba = made_celeba(tmp_path / "celeba")
    options = dict(runs_dir=str(tmp_path / "runs"), budget=16, recipes=["without_diff_augment"], samples=8,
                   metric_names=["swd"], held_out=8, cache_dir=cache_dir, show=False, batch_size=8,
                   **{key: value for key, value in TINY.items() if key != "batch_size"})
    results = data_size.measure(str(celeba), str(tmp_path / "out"), **options)
    assert sorted((record["data"], record["reference"]) for record in results) == [
        ("large", "held_out"), ("large", "training"), ("small", "held_out"), ("small", "training")]
    faces = {record["data"]: record["training_faces"] for record in results}
    assert faces == {"small": 12, "large": 12 + (30 - 12) - 8}  # the sample, the half-size faces not in it, less 8
    for record in results:
        assert record["images_seen"] == 16 and record["reference_faces"] == 8 and record["swd"] > 0
        assert record["generator"] == "average_precise_bn"
        assert record["drawing_mode"] == records.DRAWING_MODES["average_precise_bn"] and record["wall_seconds"] > 0
    assert Image.open(tmp_path / "out" / "small-without_diff_augment-average_precise_bn.png").size == (512, 512)
    starts = (tmp_path / "runs" / "small" / data_size.RECIPES["without_diff_augment"] / "my_net" / "starts.jsonl")
    lines = starts.read_text().splitlines()
    assert data_size.measure(str(celeba), str(tmp_path / "out"), **options) == results  # nothing run again
    assert starts.read_text().splitlines() == lines
    assert "| small | 12 | without diff augment |" in data_size.table(results)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results
