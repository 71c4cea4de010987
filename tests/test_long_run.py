"""experiments/long_run: a tiny run of README command 1's shape trained, each kept checkpoint scored against the
training and the held-out faces (the trained generator beside the average where asked), nothing scored twice
when scoring runs again, and the table and the curve written from the records."""

import json

import numpy as np
import pytest

from experiments import long_run
from conftest import EDIT_NAMES, TINY, made_celeba, write_attribute_list


def test_the_full_resolution_floor_is_the_training_faces_outside_the_judges_sample():
    from facegan.metrics import maths

    training = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((10, 2, 2, 3), np.float32)
    held_out = np.full((7, 2, 2, 3), -1.0, np.float32)
    floors = long_run.floor_faces({"training": training, "held_out": held_out}, samples=4)
    judged = {float(face[0, 0, 0]) for face in maths.real_sample(training, 4, long_run.records.JUDGE_SEED)}
    others = {float(face[0, 0, 0]) for face in floors[long_run.FULL_FLOOR]}
    assert len(others) == 4 and not others & judged  # 4 of the 6 faces the judge's sample leaves out
    assert floors[long_run.FLOOR].shape == (4, 2, 2, 3) and (floors[long_run.FLOOR] == -1).all()
    assert set(long_run.floor_faces({"training": training, "held_out": held_out}, samples=10)) == {long_run.FLOOR}


@pytest.mark.slow
def test_each_kept_checkpoint_is_scored_once_against_both_references(tmp_path, cache_dir, classifier, monkeypatch):
    celeba = made_celeba(tmp_path / "celeba")
    runs_dir, out = str(tmp_path / "runs"), str(tmp_path / "out")
    config = long_run.run_config(str(celeba), runs_dir, steps=4, cache_dir=cache_dir, checkpoint_every=2,
                                 sample_every=2, **TINY)
    assert config.outputs.keep_checkpoints == 2  # every checkpoint of the run kept
    from facegan import training

    assert training.train(config, show=False).step == 4
    options = dict(cache_dir=cache_dir, trained_every=4, steps=4, show=False, samples=8, held_out=8, score_every=2)
    results = long_run.score(str(celeba), runs_dir, out, **options)
    scored = sorted((record["step"], record["generator"], record["reference"]) for record in results
                    if record["generator"] not in long_run.FLOORS)
    assert [record["generator"] for record in results].count(long_run.FLOOR) == 1  # the floor, once
    full_floor = [record for record in results if record["generator"] == long_run.FULL_FLOOR]
    assert len(full_floor) == 1 and full_floor[0]["faces"] == 12 - 8  # the 4 training faces the judge leaves out
    assert [record["step"] for record in results if record["generator"] not in long_run.FLOORS][0] == 4  # newest first
    assert scored == [(2, "average_precise_bn", "held_out"), (2, "average_precise_bn", "training"),
                      (4, "average_precise_bn", "held_out"), (4, "average_precise_bn", "training"),
                      (4, "trained", "held_out"), (4, "trained", "training")]
    floor = next(record for record in results if record["generator"] == long_run.FLOOR)
    assert floor["step"] == 0 and floor["fid"] > 0 and 0 <= floor["precision"] <= 1  # real faces against real ones
    record = next(record for record in results if record["reference"] == "training" and record["step"] == 2)
    assert record["images_seen"] == 2 * TINY["batch_size"] and 0 <= record["recall"] <= 1 and record["fid"] > 0
    assert record["train_seconds"] > 0 and record["wall_seconds"] > 0 and record["seed"] == 0
    assert record["arithmetic"] == "float32" and "cores" in record["machine"]
    assert "swd" not in next(record for record in results if record["reference"] == "held_out")
    assert "The floor, held-out real faces against the training faces" in (tmp_path / "out" / "table.md").read_text()
    assert long_run.score(str(celeba), runs_dir, out, **options) == results  # nothing scored twice
    table = (tmp_path / "out" / "table.md").read_text()
    assert f"| {4 * TINY['batch_size']:,} |" in table and (tmp_path / "out" / "curve.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results

    # the coverage alone, of every kept checkpoint and both generators, once

    cover = dict(cache_dir=cache_dir, steps=4, show=False, samples=16)
    with pytest.raises(ValueError, match="No attribute classifier"):
        long_run.cover(str(celeba), runs_dir, out, **cover)
    monkeypatch.setattr(long_run, "_classifier", lambda config, folder=None: (classifier, EDIT_NAMES))
    covered = long_run.cover(str(celeba), runs_dir, out, **cover)
    assert sorted((row["step"], row["generator"], row["faces"]) for row in covered) == [
        (2, "average_precise_bn", 16), (2, "trained", 16), (4, "average_precise_bn", 16), (4, "trained", 16)]
    assert long_run.cover(str(celeba), runs_dir, out, **cover) == covered
    padded = long_run.cover(str(celeba), runs_dir, out, generators=("trained_batch_statistics",), **cover)[4:]
    assert [(row["step"], row["generator"]) for row in padded] == [(2, "trained_batch_statistics"),
                                                                    (4, "trained_batch_statistics")]
    shown = (tmp_path / "out" / "coverage.md").read_text().splitlines()  # Smiling and Young: canonical names
    assert shown[0].startswith("| images seen | generator | Young | Smiling |") and len(shown) == 2 + 6 + 1 + 2
    assert shown[-2].startswith("| | the training faces through 32×32 (the judge's bias) |")
    judged = json.loads((tmp_path / "out" / "judge.json").read_text())  # the judge's bias, measured once
    assert [record["classifier"] for record in judged] == ["attributes"]
    assert sorted(judged[0]["shares"]) == ["as they are", "through 16×16", "through 32×32"]
    young = covered[0]["attributes"]["Young"]
    assert f"| {2 * TINY['batch_size']:,} | {covered[0]['generator']} | {100 * young['generated']:.1f}% |" in shown[2]

    write_attribute_list(celeba / "list_attr_celeba.txt", range(1, 13), EDIT_NAMES)  # what the discriminator says
    view = dict(cache_dir=cache_dir, steps=4, show=False, samples=16, every=2, attribute="Smiling", held_out=8)
    viewed = long_run.view_discriminator(str(celeba), runs_dir, out, **view)
    assert [row["step"] for row in viewed] == [2, 4] and viewed[0]["attribute"] == "Smiling"
    for row in viewed:
        assert {name: group["faces"] for name, group in row["memorisation"].items()} == {
            "training faces": 12, "held-out faces": 8}  # the sample's 12 faces at half size; all 8 held out
        assert row["real"]["men"]["faces"] + row["real"]["women"]["faces"] == 12
        assert row["generated"]["men"]["faces"] + row["generated"]["women"]["faces"] == 16
        assert all(np.isfinite(group["mean_logit"]) for group in row["memorisation"].values())
    assert long_run.view_discriminator(str(celeba), runs_dir, out, **view) == viewed  # nothing viewed twice
    lines = (tmp_path / "out" / "discriminator.md").read_text().splitlines()
    assert len(lines) == 4 and lines[3].startswith(f"| {4 * TINY['batch_size']:,} | ")

    # the published grid of each checkpoint at a multiple of `every`, drawn once, as the average draws by default
    assert long_run.draw_grids(str(celeba), runs_dir, out, steps=4, every=4) == [long_run.faces_file(out, 4)]
    from PIL import Image
    from facegan import runs
    from facegan.drawing import draw_faces, ready_generator
    from facegan.images import image_grid

    grid = np.asarray(Image.open(long_run.faces_file(out, 4)))
    network = ready_generator(runs.load_gan(config.outputs.checkpoint_dir, 4)[0])
    expected = draw_faces(network, seeds=range(10_000, 10_064))
    np.testing.assert_array_equal(grid, image_grid(expected, 8, 8))
    assert long_run.draw_grids(str(celeba), runs_dir, out, steps=4, every=2) == [long_run.faces_file(out, 2)]


def test_coverage_is_kept_for_each_step_and_generator(tmp_path, generator, classifier):
    from facegan.config import Config
    from facegan.drawing import draw_faces
    from conftest import EDIT_NAMES

    faces, real = draw_faces(generator, seeds=range(60)), draw_faces(generator, seeds=range(1000, 1060))
    config = Config(**TINY)
    for name in ("average_precise_bn", "trained"):
        long_run.measure_coverage(config, 2, name, faces if name == "trained" else faces[:30], real, classifier,
                                  EDIT_NAMES, str(tmp_path), show=False)
    saved = json.loads((tmp_path / "coverage.json").read_text())
    assert [(row["step"], row["generator"], row["faces"]) for row in saved] == [
        (2, "average_precise_bn", 30), (2, "trained", 60)]
    smiling = saved[1]["attributes"]["Smiling"]
    assert 0 < smiling["real"] < 1 and smiling["ratio"] == pytest.approx(smiling["generated"] / smiling["real"],
                                                                          abs=1e-3)
    assert saved[1]["worst_canonical"][0] in ("Smiling", "Young") and saved[1]["images_seen"] == 2 * TINY["batch_size"]
    assert saved[1]["arithmetic"] == "float32" and "cores" in saved[1]["machine"]
