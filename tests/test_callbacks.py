"""callbacks: what falls due inside a call of several steps, and each callback keeping its own state, so that
the progress bar works without the loss log and their order does not matter."""

from facegan import callbacks
from facegan.config import Config


def test_reached_finds_a_due_step_inside_a_call():
    assert callbacks.reached(0, 1, 100, offset=1) and not callbacks.reached(1, 100, 100, offset=1)
    assert callbacks.reached(100, 101, 100, offset=1) and callbacks.reached(95, 105, 100, offset=1)
    assert callbacks.reached(3, 6, 4) and not callbacks.reached(4, 7, 4)


def test_the_speedometer_counts_every_step_of_a_call(monkeypatch):
    clock = [10.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    speedometer = callbacks.Speedometer(batch_size=100)
    clock[0] += 2.0
    assert speedometer.tick(1) == 50.0  # the first step: 100 images in 2 s
    clock[0] += 1.0
    assert speedometer.tick(5) == 400.0  # four steps in one call (steps_per_execution): 400 images in 1 s


def test_the_progress_bar_measures_its_own_speed_with_no_loss_log_beside_it(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    progress = callbacks.Progress(Config(steps=10, batch_size=50), start_step=0, show=True)
    progress.on_train_begin()
    for step in (1, 2, 3):
        clock[0] += 0.5
        progress.on_train_batch_end(step - 1, {"step": step, "discriminator_loss": 0.7, "generator_loss": 1.2})
    assert progress.bar.n == 3 and progress.bar.postfix.endswith("img_s=100.0")
    progress.on_train_end()
