"""Several replicas for real on this CPU: two worker processes on 127.0.0.1 (each with its own TF_CONFIG) train one
run with strategy="multi_worker": both finish with the same weights, each drew its own half of every global batch,
only the chief wrote the run's files, and the chief's checkpoint resumes as a two-worker run and as one process."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from facegan import runs
from conftest import TINY, tiny_config

WORKER = """
import json, sys
import numpy as np
import facegan
import keras
import tensorflow as tf
from facegan import training
from facegan.gan import DCGAN

settings, batches_file, weights_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
original_step = DCGAN.train_step

def recording_step(self, data):  # which faces (their indices: the faces are kept on the device) each replica drew
    tf.print(self.step, data, output_stream="file://" + batches_file, summarize=-1)
    return original_step(self, data)

DCGAN.train_step = recording_step

class SaveWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        weights = self.model.generator.trainable_weights + self.model.discriminator.trainable_weights
        np.savez(weights_file, *[weight.numpy() for weight in weights])

run = training.train(show=False, callbacks=[SaveWeights()], **settings)
print("RUN", json.dumps(dict(start_step=run.start_step, step=run.step)))
"""


def free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def run_workers(tmp_path, settings: dict, name: str, count: int = 2) -> list:
    """Start `count` workers of one multi-worker cluster on 127.0.0.1 and wait for all; returns each one's
    (result, batches file, weights file)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    started = []
    for index in range(count):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        files = (tmp_path / f"{name}-{index}-batches.txt", tmp_path / f"{name}-{index}-weights.npz")
        process = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings), *map(str, files)],
                                   env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append((process, *files))
    finished = []
    for process, batches, weights in started:
        try:
            out, err = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other, _, _ in started:
                other.kill()
            raise
        assert process.returncode == 0, err[-3000:]
        finished.append((json.loads(out.split("RUN", 1)[1]), batches, weights))
    return finished


def batches_drawn(path) -> dict:
    """step → the face indices one replica drew in it."""
    drawn = {}
    for line in path.read_text().splitlines():
        found = re.match(r"(\d+) \[([\d ]*)\]", line.strip())
        if found:
            drawn[int(found.group(1))] = [int(index) for index in found.group(2).split()]
    return drawn


@pytest.mark.slow
def test_two_workers_train_one_run_share_each_batch_and_the_chief_resumes_it(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=4, checkpoint_every=2, sample_every=2)
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "checkpoint_every",
                                                         "sample_every", "checkpoint_dir", "sample_dir", *TINY)}
    settings["strategy"] = "multi_worker"
    workers = run_workers(tmp_path, settings, "first")
    assert [run for run, _, _ in workers] == [dict(start_step=0, step=4)] * 2
    chief, other = ([np.load(weights)[key] for key in sorted(np.load(weights).files, key=lambda k: int(k[4:]))]
                    for _, _, weights in workers)
    assert len(chief) == len(other) > 0
    assert all(np.array_equal(a, b) for a, b in zip(chief, other))  # the same weights after every step
    drawn = [batches_drawn(batches) for _, batches, _ in workers]
    assert sorted(drawn[0]) == sorted(drawn[1]) == [0, 1, 2, 3]
    for step in range(4):  # the global batch split in two: each worker drew its own half
        halves = drawn[0][step], drawn[1][step]
        assert len(halves[0]) == len(halves[1]) == TINY["batch_size"] // 2 and not set(halves[0]) & set(halves[1])
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [2, 4]
    assert len(runs.read_starts(config.outputs.checkpoint_dir)) == 1  # one start recorded: the chief's
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png", "examples-4.png"]

    resumed = run_workers(tmp_path, dict(settings, steps=6), "resumed")  # the chief's checkpoint, two workers
    assert [run for run, _, _ in resumed] == [dict(start_step=4, step=6)] * 2
    from facegan import training

    alone = training.train(config, show=False, steps=7)  # and one process
    assert (alone.start_step, alone.step) == (6, 7)
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == list(range(1, 8))


@pytest.mark.slow
def test_when_a_worker_dies_the_other_stops_with_a_clear_error_and_the_last_checkpoint_resumes(tmp_path, made_faces,
                                                                                                cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=100_000, checkpoint_every=3, sample_every=1000)
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "checkpoint_every",
                                                         "sample_every", "checkpoint_dir", "sample_dir", *TINY)}
    settings["strategy"] = "multi_worker"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        files = (tmp_path / f"{index}-batches.txt", tmp_path / f"{index}-weights.npz")
        workers.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings), *map(str, files)],
                                        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 180
    while not runs.list_checkpoints(config.outputs.checkpoint_dir) and time.monotonic() < deadline:
        time.sleep(1)
    assert runs.list_checkpoints(config.outputs.checkpoint_dir), "the chief wrote no checkpoint in 3 minutes"
    workers[1].kill()  # the other worker dies at once, mid-run
    killed_at = time.monotonic()
    try:
        _, err = workers[0].communicate(timeout=150)
    finally:
        for worker in workers:
            worker.kill()
    assert workers[0].returncode != 0 and time.monotonic() - killed_at < 150
    assert "A worker of this multi-worker run stopped answering" in err and "Start every worker again" in err, \
        err[-3000:]
    from facegan import training

    kept = runs.list_checkpoints(config.outputs.checkpoint_dir)  # what was saved before is intact, and resumes
    resumed = training.train(config, show=False, steps=kept[-1][0] + 1)
    assert (resumed.start_step, resumed.step) == (kept[-1][0], kept[-1][0] + 1)
