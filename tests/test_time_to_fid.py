"""time_to_fid: the seconds a curve takes to reach a FID, the bisection that scores only the points it needs, the
defaults' points drawn along a real (tiny) run with their drawing time left out, and the peer's drawing hook,
which leaves its training exactly as it was."""

import json
import runpy
import sys

import numpy as np
import pytest

from experiments import time_to_fid
from facegan import runs
from conftest import TINY

CURVE = [dict(seconds=10, fid=300.0), dict(seconds=20, fid=200.0), dict(seconds=30, fid=100.0),
         dict(seconds=40, fid=90.0)]


def test_the_time_to_a_fid_is_interpolated_between_the_points_around_it():
    assert time_to_fid.first_reaching(CURVE, 150.0) == pytest.approx(25.0)
    assert time_to_fid.first_reaching(CURVE, 200.0) == 20  # reached exactly at a point
    assert time_to_fid.first_reaching(CURVE, 400.0) == 10  # the first point already does
    assert time_to_fid.first_reaching(CURVE, 50.0) is None
    unscored = [dict(seconds=5, images=1)] + CURVE  # points without the score are passed over
    assert time_to_fid.first_reaching(unscored, 150.0) == pytest.approx(25.0)


@pytest.mark.parametrize("target, expected", [(250.0, 2), (95.0, 9), (500.0, 0), (10.0, None)])
def test_the_bisection_finds_the_first_point_below_scoring_only_a_few(target, expected):
    scores = [400.0, 300.0, 240.0, 200.0, 180.0, 150.0, 130.0, 110.0, 100.0, 90.0, 80.0, 70.0]
    asked = []

    def score(index):
        asked.append(index)
        return scores[index]

    assert time_to_fid.first_at_or_below(score, len(scores), target) == expected
    assert len(set(asked)) <= 6  # of 12 points
    if expected:  # the point before it is scored too, for the interpolation
        assert expected - 1 in asked and expected in asked


def test_a_multiple_of_every_is_due_once_whatever_the_batch():
    from facegan import callbacks  # the defaults' points fall due by the rule of grids and checkpoints

    due = [images for previous, images in zip(range(0, 1000, 100), range(100, 1100, 100))
           if callbacks.reached(previous, images, 250)]
    assert due == [300, 500, 800, 1000]


def test_the_stopwatch_leaves_out_what_runs_while_paused(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time_to_fid.time, "perf_counter", lambda: clock[0])
    watch = time_to_fid.Stopwatch()
    clock[0] += 10.0  # ten seconds of training
    with watch.paused():
        clock[0] += 60.0  # a minute drawing faces
    clock[0] += 5.0
    assert watch.seconds() == 15.0


@pytest.mark.slow
def test_the_defaults_draw_the_judges_faces_along_a_real_run(tmp_path, made_faces, cache_dir):
    record = time_to_fid.run_defaults(str(made_faces / "img_align_celeba"), str(tmp_path), budget=48, every=16,
                                      cache_dir=cache_dir, samples=20, **{**TINY, "sample_every": 100})
    assert [point["images"] for point in record["points"]] == [16, 32, 48]
    seconds = [point["seconds"] for point in record["points"]]
    assert seconds == sorted(seconds) and seconds[0] > 0
    with np.load(tmp_path / "defaults" / record["points"][-1]["faces"]) as faces:
        assert sorted(faces.files) == ["average", "trained"]
        assert faces["average"].shape == (20, 64, 64, 3) and faces["average"].dtype == np.uint8
    assert time_to_fid.read_points(str(tmp_path), "defaults") == json.loads(json.dumps(record))
    assert record["machine"] and record["precision"] == "float32"


@pytest.mark.slow
def test_a_long_budget_candidate_trains_its_own_settings_into_its_own_folder(tmp_path, made_faces, cache_dir):
    record = time_to_fid.run_defaults(str(made_faces / "img_align_celeba"), str(tmp_path), budget=32, every=16,
                                      cache_dir=cache_dir, samples=10, recipe="joint_constant_statistics",
                                      **{**TINY, "sample_every": 100})
    assert record["recipe"] == "joint_constant_statistics"
    assert record["overrides"] == {"discriminator_batches": "joint_constant_statistics"}
    assert runs.read_config(str(tmp_path / "joint_constant_statistics" / "my_net")).recipe.discriminator_batches \
        == "joint_constant_statistics"
    assert [point["images"] for point in record["points"]] == [16, 32]
    assert time_to_fid.read_points(str(tmp_path), "joint_constant_statistics") == json.loads(json.dumps(record))
    assert time_to_fid.read_points(str(tmp_path), "defaults") is None


FAKE_PEER = '''
import argparse, os
import torch, torch.nn as nn
ap = argparse.ArgumentParser()
for flag in ("--data", "--crop"):
    ap.add_argument(flag)
for flag in ("--steps", "--batch", "--warmup"):
    ap.add_argument(flag, type=int)
ap.add_argument("--bf16", action="store_true")
o = ap.parse_args()
if o.bf16:
    open(os.environ["FAKE_PEER_WEIGHTS"] + ".bf16", "w").close()
torch.manual_seed(999)
G = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 1, 0), nn.BatchNorm2d(4), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 2, 1),
                  nn.Tanh())
D = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1))
oD, oG = torch.optim.Adam(D.parameters(), 2e-4), torch.optim.Adam(G.parameters(), 2e-4)
crit = nn.BCEWithLogitsLoss()
for step in range(o.steps + o.warmup):
    real = torch.rand(o.batch, 3, 8, 8) * 2 - 1
    D.zero_grad(); out = D(real).view(-1); crit(out, torch.ones_like(out)).backward()
    fake = G(torch.randn(o.batch, 8, 1, 1)); out = D(fake.detach()).view(-1)
    crit(out, torch.zeros_like(out)).backward(); oD.step()
    G.zero_grad(); out = D(fake).view(-1); crit(out, torch.ones_like(out)).backward(); oG.step()
torch.save(G.state_dict(), os.environ["FAKE_PEER_WEIGHTS"])
'''


@pytest.mark.slow
def test_the_peers_faces_are_drawn_without_changing_its_training(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="the peer runs on torch (pip install -r requirements-metrics.txt)")
    # one thread, so that torch's reductions run in one order in both runs: with two, the weights once differed in
    # their last bits (the whole suite beside a training run, 2026-12-05; not reproduced alone in 7 tries)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        compare_peer_alone_and_drawn(torch, tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def compare_peer_alone_and_drawn(torch, tmp_path, monkeypatch):
    script = tmp_path / "fake_peer.py"
    script.write_text(FAKE_PEER)
    monkeypatch.setenv("FAKE_PEER_WEIGHTS", str(tmp_path / "alone.pt"))
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "6", "--batch", "64", "--warmup", "0"])
    runpy.run_path(str(script), run_name="__main__")  # the peer alone, as its README runs it
    monkeypatch.setenv("FAKE_PEER_WEIGHTS", str(tmp_path / "drawn.pt"))
    record = time_to_fid.run_peer(str(script), "unused", str(tmp_path / "runs"), budget=6 * 64, every=128,
                                  samples=200)
    assert [point["images"] for point in record["points"]] == [128, 256, 384]
    with np.load(tmp_path / "runs" / "peer" / record["points"][0]["faces"]) as faces:
        assert faces["trained"].shape == (200, 8, 8, 3) and faces["trained"].dtype == np.uint8
    alone, drawn = torch.load(tmp_path / "alone.pt"), torch.load(tmp_path / "drawn.pt")
    for name, weight in alone.items():
        if "running" not in name and "num_batches" not in name:  # drawing in training mode moves batch norm's
            assert torch.equal(weight, drawn[name]), name  # moving statistics, which its training never reads
    with pytest.raises(ValueError, match="multiples of the peer's batch"):
        time_to_fid.run_peer(str(script), "unused", str(tmp_path / "runs"), budget=100, every=64)


@pytest.mark.slow
def test_the_tuned_peer_runs_with_bf16_and_stops_when_its_time_is_up(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="the peer runs on torch (pip install -r requirements-metrics.txt)")
    script = tmp_path / "fake_peer.py"
    script.write_text(FAKE_PEER)
    weights = tmp_path / "peer.pt"
    monkeypatch.setenv("FAKE_PEER_WEIGHTS", str(weights))
    record = time_to_fid.run_peer(str(script), "unused", str(tmp_path / "runs"), budget=6 * 64, every=128,
                                  samples=50, tuned=True, seconds=0.0)
    assert (tmp_path / "peer.pt.bf16").exists()  # the script was asked for its tuned bfloat16 run
    assert [point["images"] for point in record["points"]] == [64]  # stopped after its first step, faces drawn
    assert not weights.exists()  # ... and the script did not run on to its end
    assert record["precision"] == "bfloat16 autocast" and record["seconds_limit"] == 0.0
    with np.load(tmp_path / "runs" / "peer" / record["points"][0]["faces"]) as faces:
        assert faces["trained"].shape == (50, 8, 8, 3) and faces["trained"].dtype == np.uint8


def test_scoring_the_peer_alone_names_its_fid_and_the_part_still_to_run(tmp_path, made_faces, cache_dir):
    time_to_fid.write_points(str(tmp_path), "peer", dict(part="peer", budget=128, points=[
        dict(images=64, seconds=1.0, faces="faces-000064.npz"),
        dict(images=128, seconds=2.0, faces="faces-000128.npz", fid_trained=61.5)]))  # scored before: kept
    with pytest.raises(ValueError, match=r"peer's FID after 128 images is 61\.50.*run --part defaults"):
        time_to_fid.score(str(made_faces / "img_align_celeba"), str(tmp_path), str(tmp_path / "out"), cache_dir)
    with pytest.raises(ValueError, match="No peer curve"):
        time_to_fid.score(str(made_faces / "img_align_celeba"), str(tmp_path / "empty"), str(tmp_path / "out"),
                          cache_dir)


def test_the_time_to_the_peers_fid_is_read_from_the_recipes_own_curve(tmp_path, made_faces, cache_dir):
    """Points scored before are kept: with every point scored, nothing is drawn or measured again."""
    time_to_fid.write_points(str(tmp_path), "peer", dict(part="peer", budget=128, precision="bfloat16 autocast",
                                                          date="d", points=[
        dict(images=64, seconds=100.0, faces="f", fid_trained=90.0),
        dict(images=128, seconds=200.0, faces="f", fid_trained=60.0)]))
    curve = dict(part="defaults", recipe="joint_constant_statistics", seed=0, precision="mixed_bfloat16",
                 machine="CPU", date="d", overrides={"discriminator_batches": "joint_constant_statistics"})
    points = [dict(images=32, seconds=20.0, faces="f", fid_average=80.0, fid_trained=85.0),
              dict(images=64, seconds=40.0, faces="f", fid_average=50.0, fid_trained=55.0)]
    time_to_fid.write_points(str(tmp_path), "joint_constant_statistics", dict(curve, points=points))
    time_to_fid.write_points(str(tmp_path), "defaults", dict(curve, recipe="defaults", overrides={}, points=[
        dict(point, fid_average=point["fid_average"] + 5, fid_trained=point["fid_trained"] + 5)
        for point in points]))
    data, out = str(made_faces / "img_align_celeba"), str(tmp_path / "out")
    summary = time_to_fid.score(data, str(tmp_path), out, cache_dir, recipe="joint_constant_statistics")
    assert summary["recipe"] == "joint_constant_statistics" and summary["target_fid"] == 60.0
    assert summary["defaults_seconds"] == pytest.approx(20.0 + 20.0 * 20.0 / 30.0)  # 80 → 50 crosses 60
    assert summary["ratio"] == pytest.approx(200.0 / summary["defaults_seconds"], abs=0.01)
    assert "joint_constant_statistics (moving average)" in time_to_fid.report(summary)
    defaults = time_to_fid.score(data, str(tmp_path), out, cache_dir)  # the defaults' curve: 85 → 55
    assert defaults["recipe"] == "defaults" and defaults["defaults_seconds"] == pytest.approx(20.0 + 20.0 * 25 / 30)
    with pytest.raises(ValueError, match="Unknown candidate 'joint'"):
        time_to_fid.score(data, str(tmp_path), out, cache_dir, recipe="joint")


def test_the_command_line_refuses_an_unknown_recipe_and_a_score_without_out(capsys):
    for argv, message in ((["--data", "d", "--part", "score"], "give --out"),
                          (["--data", "d", "--out", "o", "--recipe", "joint"], "Unknown candidate 'joint'")):
        with pytest.raises(SystemExit):
            time_to_fid.main(argv)
        assert message in capsys.readouterr().err
