"""experiments/long_recipe: each candidate trained from its seed with its one change, every kept checkpoint's
coverage measured once (the average and the trained generator), and the table of one attribute's shares."""

import json

import pytest

from experiments import long_recipe, long_run, recipes
from conftest import EDIT_NAMES, TINY, made_celeba


def test_a_candidate_is_the_defaults_with_its_one_change_and_checkpoints_every_same_number_of_images(tmp_path):
    plain = long_recipe.run_config("defaults", "celeba", str(tmp_path), budget=150_000)
    small = long_recipe.run_config("batch_64", "celeba", str(tmp_path), budget=150_000, seed=1)
    assert (plain.training.steps, plain.outputs.checkpoint_every) == (1500, 500)
    assert (small.training.steps, small.outputs.checkpoint_every, small.training.batch_size) == (2344, 781, 64)
    assert small.outputs.checkpoint_dir == str(tmp_path / "batch_64-seed1" / "my_net") and small.training.seed == 1
    stddev = long_recipe.run_config("minibatch_stddev", "celeba", str(tmp_path), budget=1000)
    changed = {name for name, value in stddev.settings().items() if plain.settings()[name] != value}
    assert changed == {"minibatch_stddev", "steps", "checkpoint_dir", "sample_dir", "keep_checkpoints"}
    with pytest.raises(ValueError, match="Unknown candidate 'r2'"):
        long_recipe.run_config("r2", "celeba", str(tmp_path), budget=1000)
    assert long_recipe.run_config("no_augment", "celeba", str(tmp_path), budget=1000).recipe.diff_augment == []
    assert plain.recipe.diff_augment == ["translation", "cutout"]
    # the candidates keep the meaning their records were measured with: "defaults" is the base the long budget
    # started from (separate batches), whatever facegan/config.py's defaults became by its rule
    assert plain.recipe.discriminator_batches == "separate"
    reused = long_recipe.run_config("joint_reused_statistics", "celeba", str(tmp_path), budget=1000)
    assert reused.recipe.discriminator_batches == "joint_reused_statistics"
    decay = long_recipe.run_config("lr_decay", "celeba", str(tmp_path), budget=150_000)
    assert (decay.training.learning_rate_decay, decay.training.steps) == (0.5, 1500)  # the decay ends at the budget
    wide = long_recipe.run_config("joint_reused_statistics+wide_generator", "celeba", str(tmp_path), budget=1000)
    assert (wide.networks.generator_width, wide.networks.discriminator_width) == (96, 64)  # the discriminator as it was
    assert wide.recipe.discriminator_batches == "joint_reused_statistics"


def row(candidate, seed, generator, images, share, real=0.3, fid=None):
    return dict(candidate=candidate, seed=seed, generator=generator, images_seen=images, fid=fid,
                attributes={"Male": dict(generated=share, real=real)})


def test_the_table_shows_each_runs_share_per_checkpoint_and_its_mean_once_settled():
    rows = [row("defaults", 0, "average", 50_000, 0.30), row("defaults", 0, "average", 100_000, 0.02),
            row("defaults", 0, "average", 150_000, 0.04, fid=81.25),
            row("minibatch_stddev", 0, "average", 100_000, 0.25)]
    lines = long_recipe.table(rows, "Male", settled=100_000).splitlines()
    assert lines[2] == ("| candidate | seed | generator | 50,000 | 100,000 | 150,000 | mean from 100,000 "
                        "| FID (images seen) |")
    # 30% before settling is left out of the mean
    assert lines[4] == "| defaults | 0 | average | 30.0% | 2.0% | 4.0% | 3.0% | 81.2 (150,000) |"
    assert lines[5] == "| minibatch_stddev | 0 | average |  | 25.0% |  | 25.0% |  |"
    assert lines[6].startswith("| the training faces | | | 30.0% |") and len(lines) == 7  # no machine recorded
    recorded = [dict(each, machine="CPU, 2 cores, a test CPU", data="celeba/img_align_celeba") for each in rows]
    assert long_recipe.table(recorded, "Male").splitlines()[-1] == (
        "Measured on: CPU, 2 cores, a test CPU; data: celeba/img_align_celeba")
    recorded[0]["arithmetic"] = "mixed_bfloat16"
    assert long_recipe.table(recorded, "Male").splitlines()[-1].endswith("; arithmetic: mixed_bfloat16")
    with pytest.raises(ValueError, match="does not judge 'Bald'"):
        long_recipe.table(rows, "Bald")
    # runs judged by two classifiers (one retrained): each one's share of the same real faces, with its runs
    rejudged = long_recipe.table(rows + [row("ttur", 1, "average", 100_000, 0.1, real=0.295)], "Male").splitlines()
    assert rejudged[-2:] == [
        "| the training faces, as the classifier of defaults 0, minibatch_stddev 0 calls them | | | 30.0% | | | | |",
        "| the training faces, as the classifier of ttur 1 calls them | | | 29.5% | | | | |"]


@pytest.mark.slow
def test_each_candidate_trains_once_and_each_checkpoint_is_covered_once(tmp_path, cache_dir, classifier,
                                                                       monkeypatch):
    celeba = made_celeba(tmp_path / "celeba")
    monkeypatch.setattr(long_run, "_classifier", lambda config, folder=None: (classifier, EDIT_NAMES))
    options = dict(celeba=str(celeba), runs_dir=str(tmp_path / "runs"), out_dir=str(tmp_path / "out"),
                   budget=4 * TINY["batch_size"], classifier_dir="judge", cache_dir=cache_dir, show=False,
                   samples=16, checkpoint_images=2 * TINY["batch_size"], attribute="Smiling", fid=True,
                   sample_every=2, **TINY)
    rows = long_recipe.screen(["defaults", "minibatch_stddev"], [0], **options)
    assert sorted((row["candidate"], row["step"], row["generator"]) for row in rows) == [
        (candidate, step, generator) for candidate in ("defaults", "minibatch_stddev") for step in (2, 4)
        for generator in ("average_precise_bn", "trained")]
    saved = json.loads((tmp_path / "runs" / "minibatch_stddev" / "my_net" / "config.json").read_text())
    assert saved["networks"]["minibatch_stddev"] == 4 and saved["training"]["steps"] == 4
    assert json.loads((tmp_path / "runs" / "defaults" / "my_net" / "config.json").read_text())[
        "networks"]["minibatch_stddev"] == 0
    # nothing trained or measured again
    assert long_recipe.screen(["defaults", "minibatch_stddev"], [0], **options) == rows
    long_recipe.screen(["defaults"], [0], **options)  # a later screen of one candidate keeps the others' lines
    table = (tmp_path / "out" / "table.md").read_text()
    assert table.startswith("Smiling:") and "| minibatch_stddev | 0 | trained |" in table
    scored = json.loads((tmp_path / "out" / "defaults" / "results.json").read_text())  # the last step's average
    assert [(record["step"], record["generator"], record["reference"]) for record in scored] == [
        (4, "average_precise_bn", "training")] and scored[0]["fid"] > 0
    fid = [row["fid"] for row in rows if row["candidate"] == "defaults" and row["step"] == 4
           and row["generator"] == "average_precise_bn"]
    assert fid == [scored[0]["fid"]] and f"{scored[0]['fid']:.1f} ({4 * TINY['batch_size']})" in table
    assert f"| {4 * TINY['batch_size']} |" in table
    # with fid_every, the earlier checkpoints at its multiples too, the last not scored again
    long_recipe.screen(["defaults"], [0], **dict(options, fid_every=2 * TINY["batch_size"]))
    rescored = json.loads((tmp_path / "out" / "defaults" / "results.json").read_text())
    assert [(record["step"], record["generator"]) for record in rescored] == [
        (4, "average_precise_bn"), (2, "average_precise_bn")] and rescored[0] == scored[0]


def test_a_runs_extra_averages_are_covered_at_each_checkpoint_and_scored_at_its_last(tmp_path, cache_dir,
                                                                                    classifier, monkeypatch):
    celeba = made_celeba(tmp_path / "celeba")
    monkeypatch.setattr(long_run, "_classifier", lambda config, folder=None: (classifier, EDIT_NAMES))
    rows = long_recipe.screen(["defaults"], [0], str(celeba), str(tmp_path / "runs"), str(tmp_path / "out"),
                              budget=4 * TINY["batch_size"], classifier_dir="judge", cache_dir=cache_dir, show=False,
                              samples=16, checkpoint_images=2 * TINY["batch_size"], fid=True,
                              fid_every=2 * TINY["batch_size"], attribute="Smiling", sample_every=2,
                              extra_averages=[200], **TINY)
    assert sorted((row["step"], row["generator"]) for row in rows) == [
        (step, generator) for step in (2, 4) for generator in ("average_200", "average_precise_bn", "trained")]
    scored = json.loads((tmp_path / "out" / "defaults" / "results.json").read_text())
    assert sorted((record["step"], record["generator"]) for record in scored) == [
        (2, "average_precise_bn"), (4, "average_200"), (4, "average_precise_bn")]  # the extra at the last step
    extra = next(record for record in scored if record["generator"] == "average_200")
    assert "half-life 200 images" in extra["drawing_mode"] and extra["fid"] > 0
    average = next(record for record in scored if record["generator"] == "average_precise_bn" and record["step"] == 4)
    assert extra["fid"] != average["fid"]  # another network drew them


def test_fid_is_scored_at_the_last_step_and_each_kept_multiple_of_fid_every(tmp_path):
    config = long_recipe.run_config("defaults", "celeba", str(tmp_path), budget=800_000)  # 8,000 steps of 100
    kept = list(range(500, 8_001, 500))
    assert long_recipe.fid_steps(config, kept) == [8_000]
    assert long_recipe.fid_steps(config, kept, fid_every=200_000) == [8_000, 6_000, 4_000, 2_000]
    assert long_recipe.fid_steps(config, kept[:5], fid_every=200_000) == [2_000]  # only kept checkpoints
    small = long_recipe.run_config("batch_64", "celeba", str(tmp_path), budget=800_000)  # 12,500 steps of 64
    assert long_recipe.fid_steps(small, [3_125, 3_124, 6_250, 12_500], fid_every=200_000) == [12_500, 6_250, 3_125]


def test_candidates_joined_by_plus_change_every_setting_of_each(tmp_path):
    both = long_recipe.run_config("translation_only+ttur", "celeba", str(tmp_path), budget=150_000, seed=2)
    assert both.recipe.diff_augment == ["translation"]
    assert (both.training.generator_learning_rate, both.training.discriminator_learning_rate) == (1e-4, 4e-4)
    assert both.outputs.checkpoint_dir == str(tmp_path / "translation_only+ttur-seed2" / "my_net")
    assert recipes.long_candidate_settings("defaults+batch_64") == {**recipes.LONG_BASE, "batch_size": 64}
    with pytest.raises(ValueError, match="Unknown candidate 'r2'"):
        recipes.long_candidate_settings("ttur+r2")
    with pytest.raises(ValueError, match="sets r1_gamma twice"):
        recipes.long_candidate_settings("r1_gamma1+r1_gamma0.01")
    with pytest.raises(SystemExit):
        long_recipe.main(["--celeba", "c", "--classifier", "j", "--out", "o", "--candidates", "ttur+r2"])


def test_the_table_finds_every_screened_run_whichever_screen_made_it(tmp_path):
    for name in ("translation_only+ttur-seed1", "defaults", "ttur-seed1", "r1_gamma0.01", "unknown",
                 "defaults-seedx", "ttur+unknown", "translation_only+ttur"):
        (tmp_path / name).mkdir()
    assert long_recipe.screened(str(tmp_path)) == [("defaults", 0), ("ttur", 1), ("r1_gamma0.01", 0),
                                                   ("translation_only+ttur", 0), ("translation_only+ttur", 1)]
    assert long_recipe.screened(str(tmp_path / "none")) == []


def test_a_screen_stopped_by_hand_trains_and_measures_nothing_more(tmp_path, monkeypatch):
    from facegan import training

    trained, covered = [], []

    def stopped_training(config, show=True):
        trained.append(config.outputs.checkpoint_dir)
        return training.Run(config, 0, 3, True, None, None)

    monkeypatch.setattr(training, "train", stopped_training)
    monkeypatch.setattr(long_run, "cover", lambda *arguments, **options: covered.append(arguments))
    rows = long_recipe.screen(["defaults", "minibatch_stddev"], [0, 1], "celeba", str(tmp_path / "runs"),
                              str(tmp_path / "out"), budget=1000, classifier_dir="judge", show=False)
    assert rows == [] and covered == [] and trained == [str(tmp_path / "runs" / "defaults" / "my_net")]


def test_each_candidate_is_judged_against_the_defaults_by_the_ablations_rule_per_budget():
    average = long_run.GENERATOR
    rows = [row("defaults", seed, average, 800_000, 0.05, fid=fid) for seed, fid in ((0, 34.0), (1, 36.0), (2, 35.0))]
    rows += [row("ttur", seed, average, 800_000, 0.20, fid=fid) for seed, fid in ((0, 30.0), (1, 31.0))]
    rows += [row("ttur", 0, "trained", 800_000, 0.30, fid=10.0), row("defaults", 0, average, 150_000, 0.02, fid=77.0),
             row("ttur", 0, average, 150_000, 0.07, fid=90.8), row("lr_decay", 0, average, 800_000, 0.1)]
    found = {comparison.challenger: comparison for comparison in long_recipe.verdicts(rows)}
    assert sorted(found) == ["ttur at 150,000 images", "ttur at 800,000 images"]  # lr_decay has no FID
    late = found["ttur at 800,000 images"]
    assert (late.challenger_scores, late.incumbent_scores) == ([30.0, 31.0], [34.0, 36.0, 35.0])  # not the trained
    assert late.verdict == "undecided"  # two seeds screen, three adopt
    rows.append(row("ttur", 2, average, 800_000, 0.20, fid=29.0))
    late_verdict = lambda: {c.challenger: c.verdict for c in long_recipe.verdicts(rows)}["ttur at 800,000 images"]  # noqa: E731
    assert late_verdict() == "adopt"
    rows.append(row("ttur", 3, average, 800_000, 0.20, fid=60.0))  # a bad fourth seed: the mean is no longer better
    assert late_verdict() == "keep the incumbent"
    text = long_recipe.table(rows, "Male")
    assert "- ttur at 800,000 images (quality): 37.5 ± 15.0 (n=4) against defaults 35.0 ± 1.0 (n=3)" in text


def test_a_join_is_judged_against_the_defaults_and_against_each_of_its_parts_scored():
    average = long_run.GENERATOR
    rows = [row("defaults", seed, average, 800_000, 0.05, fid=fid) for seed, fid in ((0, 36.0), (1, 39.0), (2, 37.0))]
    rows += [row("joint_constant_statistics", seed, average, 800_000, 0.1, fid=fid)
             for seed, fid in ((0, 29.0), (1, 28.4), (2, 30.0))]
    rows += [row("joint_constant_statistics+translation_only", seed, average, 800_000, 0.1, fid=fid)
             for seed, fid in ((0, 24.0), (1, 25.0), (2, 24.5))]
    judged = [(c.challenger, c.incumbent, c.verdict) for c in long_recipe.verdicts(rows)]
    join = "joint_constant_statistics+translation_only at 800,000 images"
    assert judged == [("joint_constant_statistics at 800,000 images", "defaults", "adopt"),
                      (join, "defaults", "adopt"),
                      (join, "joint_constant_statistics", "adopt")]  # not translation_only: it was not scored
    rows += [row("joint_constant_statistics+translation_only", 3, average, 800_000, 0.1, fid=40.0)]
    judged = {c.incumbent: c.verdict for c in long_recipe.verdicts(rows) if c.challenger == join}
    assert judged == {"defaults": "adopt", "joint_constant_statistics": "keep the incumbent"}


def test_the_change_adopted_is_the_best_one_the_rule_adopts_against_the_defaults_and_its_parts():
    average = long_run.GENERATOR
    rows = [row("defaults", seed, average, 800_000, 0.05, fid=fid) for seed, fid in ((0, 36.0), (1, 39.0), (2, 37.0))]
    rows += [row("translation_only", seed, average, 800_000, 0.1, fid=fid) for seed, fid in ((0, 30.0), (1, 34.0))]
    rows += [row("defaults", 0, average, 200_000, 0.05, fid=60.0), row("ttur", 0, average, 200_000, 0.05, fid=40.0)]
    assert long_recipe.adopted(rows, 800_000) is None  # two seeds screen: nothing is adopted
    rows += [row("translation_only", 2, average, 800_000, 0.1, fid=32.0)]
    assert long_recipe.adopted(rows, 800_000) == "translation_only"
    assert long_recipe.adopted(rows, 200_000) is None  # another budget is judged on its own scores
    rows += [row("joint_reused_statistics", seed, average, 800_000, 0.1, fid=fid)
             for seed, fid in ((0, 28.0), (1, 29.0), (2, 28.5))]
    assert long_recipe.adopted(rows, 800_000) == "joint_reused_statistics"  # both adopted: the lower mean
    join = "joint_reused_statistics+ttur"  # better than the defaults, not than the change it adds to
    rows += [row(join, seed, average, 800_000, 0.1, fid=fid) for seed, fid in ((0, 27.0), (1, 30.0), (2, 28.0))]
    assert long_recipe.adopted(rows, 800_000) == "joint_reused_statistics"
    rows = [dict(r, fid=r["fid"] - 2) if r["candidate"] == join else r for r in rows]
    assert long_recipe.adopted(rows, 800_000) == join

