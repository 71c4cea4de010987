"""Stopping training cleanly: SIGINT (Ctrl-C, Jupyter's stop button) or SIGTERM ends training after the step under
way, once what that step writes is written; a file being written is never cut in half."""

import contextlib
import signal
import threading

import keras


class Interrupts:
    """Stops training cleanly on SIGINT (Ctrl-C, Jupyter's stop button) and SIGTERM: the first request ends
    training after the step under way, once its losses, grid and checkpoint are written; a second request
    interrupts at once. While a checkpoint or grid is being written, requests wait, so no file is cut in half."""

    def __init__(self):
        self.requested = False
        self.held = False
        self.pending = False
        self.previous = {}

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested = True
            print(f"stop requested (signal {signum}): finishing this step and saving a checkpoint", flush=True)
        elif self.held:
            self.pending = True
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def hold(self):
        self.held = True
        try:
            yield
        finally:
            self.held = False
            if self.pending:
                self.pending = False
                raise KeyboardInterrupt("stop requested while saving")


class StopOnRequest(keras.callbacks.Callback):
    """Ends fit() after a step once a stop was requested; it runs after the other callbacks of that step."""

    def __init__(self, interrupts: Interrupts):
        super().__init__()
        self.interrupts = interrupts

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupts.requested:
            self.model.stop_training = True
