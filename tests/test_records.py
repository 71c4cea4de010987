"""records: results files written whole, parts saved with their machine and date, and the module loads no
TensorFlow until a function that draws or reads a run asks for it."""

import json

import pytest

from experiments import records
from facegan import devices


def test_each_part_is_saved_as_it_is_measured_with_its_machine_code_and_date(tmp_path):
    records.save_part(str(tmp_path), "edits", {"ranges": {"Smiling": 2.0}})
    results = records.save_part(str(tmp_path), "arithmetic", {"results": 200})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results and saved["edits"] == {"ranges": {"Smiling": 2.0}}
    assert set(saved["measured"]) == {"edits", "arithmetic"}
    assert saved["measured"]["edits"]["machine"] == devices.machine()
    assert saved["measured"]["edits"]["code"] == devices.code_version()  # the commit, or None outside a checkout
    assert records.read_json(str(tmp_path / "nowhere" / "results.json"), {}) == {}


def test_a_results_list_grows_record_by_record_and_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    records.write_results(str(tmp_path), [{"setting": "plain", "fid": 100.0}])
    records.write_results(str(tmp_path), records.read_results(str(tmp_path)) + [{"setting": "ttur", "fid": 90.0}])
    assert [record["setting"] for record in records.read_results(str(tmp_path))] == ["plain", "ttur"]
    before = (tmp_path / "results.json").read_text()

    def broken_dump(value, handle, **options):
        handle.write("[{\"setting\": ")
        raise OSError("disk full")

    monkeypatch.setattr(records.json, "dump", broken_dump)
    try:
        records.write_results(str(tmp_path), [])
    except OSError:
        pass
    assert (tmp_path / "results.json").read_text() == before
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_training_seconds_count_steps_at_the_median_speed_unmoved_by_a_pause():
    losses = [{"images_per_second": speed} for speed in (100.0, 100.0, 5.0, 100.0, 100.0)]  # one slow step: a pause
    assert records.median_speed(losses) == 100.0
    assert records.training_seconds(losses, steps=50, batch_size=100) == 50.0
    assert records.training_seconds([], steps=50, batch_size=100) is None


def test_a_run_name_reads_back_as_its_setting_and_seed():
    for setting, seed in (("defaults", 0), ("ttur", 1), ("r1_gamma0.01", 12), ("translation_only+ttur", 2)):
        assert records.parse_run_name(records.run_name(setting, seed)) == (setting, seed)
    assert records.parse_run_name("defaults-seedx") is None


def test_a_generator_is_one_of_the_four_or_an_extra_average_named_by_its_half_life():
    assert records.extra_average_half_life("average_20000") == 20000
    assert [records.extra_average_half_life(name) for name in ("average", "average_precise_bn", "average_0",
                                                               "trained")] == [None] * 4
    assert records.drawing_mode_text("trained") == records.DRAWING_MODES["trained"]
    assert "half-life 20,000 images (extra_averages)" in records.drawing_mode_text("average_20000")
    assert "half-life 20,000 images (extra_averages)" in records.drawing_mode_text("average_20000", 800_000)
    assert "half-life 200,000 images (extra_averages; 40,000 after these 800,000 images seen, the ramp" in \
        records.drawing_mode_text("average_200000", 800_000)
    for wrong in ("average_0", "average_x", "best"):
        with pytest.raises(ValueError, match="Unknown generator .*average_<half-life>"):
            records.check_generator(wrong)
