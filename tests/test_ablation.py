"""ablation: settings by name, a tiny ablation end to end (train, score, grids, table), resume and refusals."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from experiments import ablation, long_recipe, recipes, records
from facegan import drawing
from facegan.config import Config, PLAIN_RECIPE
from facegan import runs
from facegan import training
from conftest import ROOT, TINY

NETWORK = {name: value for name, value in TINY.items() if name != "batch_size"}


def test_settings_combine_by_plus_and_each_run_starts_from_the_plain_recipe(tmp_path):
    assert recipes.overrides_of("ttur+flip_faces") == dict(generator_learning_rate=1e-4,
                                                            discriminator_learning_rate=4e-4, flip_faces=True)
    config = recipes.run_config("label_smoothing", "faces", budget=1000, runs_dir=str(tmp_path), batch_size=64)
    assert config.training.steps == 16  # ceil(1000 / 64): at least the budget
    assert config.recipe.label_smoothing == 0.1 and config.recipe.ema_decay == recipes.EMA_DECAY
    plain = recipes.run_config("plain", "faces", budget=1000, runs_dir=str(tmp_path))
    for name, value in PLAIN_RECIPE.items():
        assert plain.settings()[name] == (recipes.EMA_DECAY if name == "ema_decay" else value)
    assert plain.outputs.checkpoint_dir == os.path.join(str(tmp_path), "plain", "my_net")
    with pytest.raises(ValueError, match="Unknown setting 'dropout' in 'ttur\\+dropout'"):
        recipes.overrides_of("ttur+dropout")


@pytest.mark.slow
def test_a_tiny_ablation_trains_scores_each_generator_writes_grids_and_a_table(tmp_path, made_faces, cache_dir):
    out = tmp_path / "docs"
    options = dict(data=str(made_faces / "img_align_celeba"), budget=24, runs_dir=str(tmp_path / "runs"),
                   out_dir=str(out), samples=64, metric_names=("swd",), cache_dir=cache_dir, show=False,
                   batch_size=8, **NETWORK)
    results = ablation.ablate(settings=["plain", "spectral_norm"], **options)
    assert [(r["setting"], r["generator"]) for r in results] == [
        (setting, generator) for setting in ("plain", "spectral_norm") for generator in records.GENERATORS]
    for record in results:
        assert record["images_seen"] == 24 and record["steps"] == 3 and np.isfinite(record["swd"])
        assert record["train_seconds"] > 0
        with Image.open(out / f"{record['setting']}-{record['generator']}.png") as grid:
            assert grid.size == (512, 512)  # 8 × 8 generated faces
    assert results[len(records.GENERATORS)]["overrides"] == {"discriminator_norm": "spectral"}
    assert (results[0]["training_folders"], results[0]["training_faces"], results[0]["reference"]) == (
        "img_align_celeba", 160, "training")  # what it trained on and was scored against, in every record
    assert results[0]["drawing_mode"] == records.DRAWING_MODES["trained"] and results[0]["reference_faces"] == 64
    scores = {record["generator"]: record["swd"] for record in results[:len(records.GENERATORS)]}
    assert len(set(scores.values())) == len(scores)  # four different ways of drawing were scored
    assert results[1]["drawing_mode"] == records.DRAWING_MODES["trained_batch_statistics"]
    table = (out / "table.md").read_text()
    runs_table = table.split("## Over the training seeds")[0]
    rows = [line for line in runs_table.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(results) and "| plain | trained |" in table and "+0.0%" not in table
    assert "| plain | 1 |" in table and "## The rule, in float32" in table  # the seeds' summary and the verdicts
    assert rows[2].endswith("| float32 | M1 |") and f"- M1: {results[0]['machine']}" in table  # the machine named

    # Run again: nothing is trained or scored twice; a new generator choice scores only what is missing.
    checkpoints = runs.list_checkpoints(str(tmp_path / "runs" / "plain" / "my_net"))
    again = ablation.ablate(settings=["plain", "spectral_norm"], **options)
    assert again == results
    assert runs.list_checkpoints(str(tmp_path / "runs" / "plain" / "my_net")) == checkpoints
    assert json.loads((out / "results.json").read_text()) == results


@pytest.mark.slow
def test_the_two_averages_differ_in_their_batch_norm_statistics_only(tmp_path, made_faces, cache_dir):
    config = recipes.run_config("plain", str(made_faces / "img_align_celeba"), budget=16, runs_dir=str(tmp_path),
                                 batch_size=8, cache_dir=cache_dir, **NETWORK)
    training.train(config, show=False)
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    own = [w.numpy().copy() for w in drawing.ready_generator(gan).network.weights]  # statistics of its own: the default
    network = records.pick_generator(gan, "average").network
    assert network is gan.ema_generator
    for average, trained in zip(network.non_trainable_weights, gan.generator.non_trainable_weights):
        np.testing.assert_array_equal(average.numpy(), trained.numpy())  # the trained generator's statistics
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(own, network.weights)]
    statistics = ["moving" in w.path for w in network.weights]
    assert any(changed) and changed == [c and s for c, s in zip(changed, statistics)]
    network = records.pick_generator(gan, "average_precise_bn").network
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(own, network.weights))  # back to its own
    seed_way = records.pick_generator(gan, "trained_batch_statistics")
    assert seed_way.network is gan.generator and records.drawing_mode_of("trained_batch_statistics") == "pad"
    assert records.drawing_mode_of("trained") == "independent"
    with pytest.raises(ValueError, match="Unknown generator 'best'"):
        records.pick_generator(gan, "best")


@pytest.mark.slow
def test_a_setting_that_diverges_is_recorded_and_the_next_one_still_runs(tmp_path, made_faces, cache_dir, monkeypatch):
    real_train = training.train

    def train(config, **options):
        if config.recipe.label_smoothing:  # this setting "diverges"
            raise FloatingPointError("Training diverged: a loss or weight was not finite at step 2.")
        return real_train(config, **options)

    monkeypatch.setattr(training, "train", train)
    out = tmp_path / "docs"
    results = ablation.ablate(str(made_faces / "img_align_celeba"), ["label_smoothing", "plain"], budget=16,
                              runs_dir=str(tmp_path / "runs"), out_dir=str(out), samples=16, generators=["trained"],
                              metric_names=("swd",), cache_dir=cache_dir, show=False, batch_size=8, **NETWORK)
    assert [(r["setting"], "diverged" in r) for r in results] == [("label_smoothing", True), ("plain", False)]
    assert "not finite at step 2" in results[0]["diverged"]
    assert "| label_smoothing | trained | diverged |" in (out / "table.md").read_text()


@pytest.mark.slow
def test_another_training_seed_runs_a_setting_again_beside_the_ablations_own_run(tmp_path, made_faces, cache_dir):
    out, runs_dir = tmp_path / "docs", tmp_path / "runs"
    options = dict(data=str(made_faces / "img_align_celeba"), budget=16, runs_dir=str(runs_dir), out_dir=str(out),
                   samples=16, generators=["trained"], metric_names=("swd",), cache_dir=cache_dir, show=False,
                   batch_size=8, **NETWORK)
    ablation.ablate(settings=["plain"], **options)
    results = ablation.ablate(settings=["plain"], seed=1, **options)  # seed 0's record does not stand for seed 1's
    assert [(r["setting"], r["seed"]) for r in results] == [("plain", 0), ("plain", 1)]
    assert ablation.ablate(settings=["plain"], seed=1, **options) == results  # and seed 1's is not run twice
    seed_0, _ = runs.load_gan(str(runs_dir / "plain" / "my_net"))
    seed_1, config = runs.load_gan(str(runs_dir / "plain-seed1" / "my_net"))
    assert config.training.seed == 1
    assert not np.array_equal(seed_0.generator.weights[0].numpy(), seed_1.generator.weights[0].numpy())
    assert (out / "plain-trained.png").is_file() and (out / "plain-seed1-trained.png").is_file()
    assert "| plain, seed 1 | trained |" in (out / "table.md").read_text()


def test_the_chosen_combination_is_every_setting_that_beat_plain_alone_best_first(tmp_path, made_faces):
    def record(setting, fid, generator="average_precise_bn", images_seen=96_000, seed=0):
        return dict(setting=setting, generator=generator, images_seen=images_seen, fid=fid, seed=seed)

    results = [record("plain", 200.0), record("plain", 220.0, "trained"), record("ttur", 190.0),
               record("spectral_norm", 150.0), record("flip_faces", 200.0),  # equal is no gain
               record("flip_faces", 100.0, seed=1),  # runs from other seeds do not choose
               record("label_smoothing", 180.0, "trained"),  # beat plain's trained generator, not its average
               record("label_smoothing", 100.0, images_seen=48_000),  # another budget
               dict(setting="label_smoothing", generator="average_precise_bn", images_seen=96_000, diverged="step 5")]
    assert ablation.chosen_combination(results, 96_000) == "spectral_norm+ttur"
    assert ablation.chosen_combination(results, 96_000, generator="trained") == "label_smoothing"
    assert ablation.chosen_combination(results[:1], 96_000) == "plain"
    assert recipes.overrides_of(ablation.chosen_combination(results, 96_000)) == dict(
        discriminator_norm="spectral", generator_learning_rate=1e-4, discriminator_learning_rate=4e-4)
    with pytest.raises(ValueError, match="No fid of the plain recipe's average_precise_bn generator at 48,000 "):
        ablation.chosen_combination(results, 48_000)
    # ablate() resolves "chosen" from OUT/results.json before it trains anything
    with pytest.raises(ValueError, match="run the plain setting first"):
        ablation.ablate(str(made_faces / "img_align_celeba"), ["chosen"], budget=16, runs_dir=str(tmp_path / "runs"),
                        out_dir=str(tmp_path / "docs"), show=False, batch_size=8, **NETWORK)
    assert not (tmp_path / "runs").exists()


def test_the_table_lists_settings_and_generators_in_their_order_whatever_order_they_were_scored_in():
    def record(setting, generator, fid):
        # swd comes ×10³
        return dict(setting=setting, generator=generator, images_seen=96_000, fid=fid, kid=0.1, swd=50.0)

    results = [record("ttur", "average_precise_bn", 150.0), record("plain", "average_precise_bn", 160.0),
               record("ttur+flip_faces", "trained", 190.0), record("plain", "trained", 200.0),
               record("ttur", "trained", 250.0)]
    rows = [line.split(" | ")[:2] for line in ablation.table(results).splitlines()[2:] if line.startswith("| ")]
    assert rows == [["| plain", "trained"], ["| plain", "average_precise_bn"], ["| ttur", "trained"],
                    ["| ttur", "average_precise_bn"], ["| ttur+flip_faces", "trained"]]
    assert "| ttur | average_precise_bn | 150.00 | 100.00 | 50.0 | -25.0% |" in ablation.table(results)


def test_a_change_needs_three_seeds_a_side_and_a_mean_beyond_the_standard_error():
    def record(setting, fid, seed, seconds=1000.0, machine="zen4"):
        return dict(setting=setting, generator="average_precise_bn", images_seen=96_000, fid=fid, seed=seed,
                    train_seconds=seconds, machine=machine)

    plain = [record("plain", fid, seed) for seed, fid in enumerate((150.0, 160.0, 155.0))]  # mean 155, sd 5
    better = [record("diff_augment", fid, seed) for seed, fid in enumerate((140.0, 150.0, 145.0))]  # mean 145
    close = [record("diff_augment", fid, seed) for seed, fid in enumerate((148.0, 158.0, 153.0))]  # mean 153
    ladder = (("diff_augment", "quality"),)
    [decided] = ablation.walk_ladder(plain + better, 96_000, ladder)
    assert decided.difference == -10.0 and decided.standard_error == pytest.approx(np.sqrt(2 * 25 / 3))
    assert decided.verdict == "adopt" and ablation.chosen_defaults(plain + better, 96_000, ladder) == "diff_augment"
    assert ablation.walk_ladder(plain + close, 96_000, ladder)[0].verdict == "keep the incumbent"  # 2 < 4.1
    assert ablation.chosen_defaults(plain + close, 96_000, ladder) == "plain"
    two_seeds = plain + better[:2]
    assert ablation.walk_ladder(two_seeds, 96_000, ladder)[0].verdict == "undecided"  # a mean of two is not enough
    assert "(n=2)" in ablation.walk_ladder(two_seeds, 96_000, ladder)[0].describe()


def test_a_speed_change_must_train_faster_on_one_machine_and_score_no_worse():
    def record(setting, fid, seed, seconds, machine="zen4"):
        return dict(setting=setting, generator="average_precise_bn", images_seen=96_000, fid=fid, seed=seed,
                    train_seconds=seconds, machine=machine)

    ladder = (("kernel_4", "speed"),)
    plain = [record("plain", fid, seed, 2000.0) for seed, fid in enumerate((150.0, 160.0, 155.0))]
    faster = [record("kernel_4", fid, seed, 900.0) for seed, fid in enumerate((152.0, 162.0, 157.0))]  # +2 < SE
    assert ablation.walk_ladder(plain + faster, 96_000, ladder)[0].verdict == "adopt"
    worse = [record("kernel_4", fid + 10, seed, 900.0) for seed, fid in enumerate((152.0, 162.0, 157.0))]
    assert ablation.walk_ladder(plain + worse, 96_000, ladder)[0].verdict == "keep the incumbent"
    slower = [dict(run, train_seconds=1950.0) for run in faster]  # within TIME_TIE of 2000 s: not faster
    assert ablation.walk_ladder(plain + slower, 96_000, ladder)[0].verdict == "keep the incumbent"
    elsewhere = [dict(run, machine="zen3") for run in faster]  # no machine ran both: no claim either way
    assert ablation.walk_ladder(plain + elsewhere, 96_000, ladder)[0].verdict == "undecided"


def test_seeds_are_summarised_as_mean_spread_and_n():
    results = [dict(setting="plain", generator="average_precise_bn", images_seen=96_000, fid=fid, kid=0.1, swd=40.0,
                    seed=seed) for seed, fid in enumerate((150.0, 160.0))]
    assert "| plain | 2 | 155.0 ± 7.1 | 100.0 ± 0.0 | 40.0 ± 0.0 |" in ablation.seed_table(results, 96_000)


def test_the_dcgan_defaults_are_what_the_published_results_make_the_defaults():
    results = records.read_results(str(ROOT / "docs" / "ablation"))  # what the README publishes
    chosen = ablation.chosen_defaults(results, 96_000)
    measured = recipes.run_config(chosen, "faces", budget=96_000, runs_dir="runs")
    # then the change the rule adopts at the long budget, if any (docs/long-recipe/800k)
    late = long_recipe.adopted(long_recipe.read_rows(str(ROOT / "docs" / "long-recipe" / "800k")), 800_000)
    changed = recipes.long_candidate_settings(late) if late else {}
    defaults = Config()
    assert {name: defaults.settings()[name] for name in [*PLAIN_RECIPE, *changed]} == {
        **{name: measured.settings()[name] for name in PLAIN_RECIPE}, **changed}
    # where "auto" is float32, the same recipe in float32
    in_float32 = recipes.run_config(ablation.chosen_defaults(results, 96_000, ablation.float32_ladder()), "faces",
                                     budget=96_000, runs_dir="runs")
    recipe = {name: in_float32.settings()[name] for name in PLAIN_RECIPE}
    assert {**recipe, "precision": "auto"} == {name: measured.settings()[name] for name in PLAIN_RECIPE}
    assert defaults.recipe.ema_statistics_batches == records.STANDING_STATISTICS_BATCHES  # drawn as it was scored


def test_the_peers_faces_are_scored_by_the_same_judge_and_listed_last(tmp_path, made_faces, cache_dir):
    from conftest import drawn_face

    faces = np.stack([np.asarray(drawn_face(1000 + index).resize((64, 64))) for index in range(48)])
    np.savez_compressed(tmp_path / "peer.npz", x=faces)
    out = tmp_path / "docs"
    out.mkdir()
    ablation.write_results(str(out), [dict(setting="plain", generator="trained", images_seen=96_000, fid=200.0,
                                           swd=50.0, machine="zen3")])
    record = ablation.score_peer(str(tmp_path / "peer.npz"), str(made_faces / "img_align_celeba"), 96_000,
                                 train_seconds=1500.0, images_per_second=64.0, out_dir=str(out),
                                 metric_names=("swd",), cache_dir=cache_dir, show=False)
    assert (record["setting"], record["images_per_second"], record["generated"]) == (ablation.PEER, 64.0, 48)
    assert record["swd"] > 0 and (out / f"{ablation.PEER}-trained.png").is_file()
    rows = [line for line in ablation.table(records.read_results(str(out))).splitlines() if line.startswith("| ")]
    assert rows[-1].startswith(f"| {ablation.PEER} | trained |") and "| 0.42 h | 64.0 |" in rows[-1]
    np.savez_compressed(tmp_path / "bad.npz", x=faces.astype(np.float32))
    with pytest.raises(ValueError, match="bad.npz: x must hold uint8 faces"):
        ablation.score_peer(str(tmp_path / "bad.npz"), str(made_faces / "img_align_celeba"), 96_000, 1.0, 1.0,
                            str(out), ("swd",), cache_dir, show=False)
