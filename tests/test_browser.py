"""Both notebooks in a real browser, as a person runs them: JupyterLab in headless Chromium (tools/browser.py), Run All,
then what the page shows: the progress bar at its end, the sample grid, the loss plot, the GIF and the strip, the
explorer's face redrawn as a slider moves and restored as it moves back, and no error anywhere.

Without Chromium or Playwright these tests are skipped, naming the package (with REQUIRE_BROWSER=1, as CI sets it,
they fail instead). Screenshots land in $BROWSER_SCREENSHOTS, or in the test's temporary folder.
"""

import importlib.util
import io
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TINY

spec = importlib.util.spec_from_file_location("notebook_browser", ROOT / "tools" / "browser.py")
browser = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browser)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="module")
def screenshots(folder):
    target = os.environ.get("BROWSER_SCREENSHOTS") or str(folder / "screenshots")
    os.makedirs(target, exist_ok=True)
    return target


@pytest.fixture(scope="module")
def session(folder):
    if not browser.available():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but the browser tests cannot run: {browser.MISSING}")
        pytest.skip(browser.MISSING)
    with browser.jupyter_lab(str(folder)) as lab, browser.chromium() as context:
        yield lab, context


def page_text(page) -> str:
    return page.inner_text("body")


def check_clean(page, screenshots: str, name: str):
    """No error output, no error shown by the page, no flood of TensorFlow's start-up logs."""
    found = browser.errors(page)
    stderr = browser.stderr_text(page)
    assert not found, f"{name}: {found}\n\nthe page:\n{page_text(page)[-5000:]}"
    shown = page_text(page)
    logs = [line for line in (stderr + shown).splitlines() if "cuda" in line.lower() or line[:5] in ("I0000", "W0000",
                                                                                                   "E0000")]
    assert not logs, f"{name}: TensorFlow's start-up logs in the cells:\n" + "\n".join(logs[:20])
    page.screenshot(path=os.path.join(screenshots, f"{name}.png"), full_page=True)


def image_outputs(page, cell_marker: str) -> list:
    """The image mime types of the outputs of the first code cell whose source holds cell_marker."""
    return [mime for output in browser.outputs(page) if output["cell"] == page.evaluate(
        """marker => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
                       for (let index = 0; index < cells.length; index++)
                           if (cells.get(index).sharedModel.getSource().includes(marker)) return index;
                       return -1; }""", cell_marker)
            for mime in output.get("data", {}) if mime.startswith("image/")]


def test_the_training_notebook_runs_in_the_browser_with_its_progress_bar_grid_and_plot(
        session, folder, made_faces, cache_dir, screenshots):
    lab, context = session
    browser.with_parameters(ROOT / "gan_new.ipynb", folder / "gan_new.ipynb", dict(
        image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=3, sample_every=2,
        checkpoint_every=2, checkpoint_dir=str(folder / "notebook_net"), sample_dir=str(folder / "imgs"),
        evaluation_samples=16, **TINY))
    page = browser.open_notebook(context, lab, "gan_new.ipynb")
    browser.run_all(page, timeout=240)
    check_clean(page, screenshots, "gan_new")
    bars = page.locator(".widget-hprogress")
    assert bars.count() >= 1, page_text(page)[-3000:]  # tqdm's bars as ipywidgets, rendered
    assert "3/3" in page_text(page)  # the training bar at its end
    assert "image/png" in image_outputs(page, "training.train(")  # the newest sample grid
    assert "image/png" in image_outputs(page, "plot_losses")  # the loss plot
    assert (folder / "imgs" / "examples-3.png").is_file()


@pytest.fixture(scope="module")
def trained_run(folder, made_faces, cache_dir):
    """A tiny trained run with attribute directions, for the interpolation notebook."""
    from facegan import drawing, editing, runs, training
    from facegan.config import Config

    checkpoint_dir = folder / "my_net"
    training.train(Config(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=3,
                          checkpoint_dir=str(checkpoint_dir), sample_dir=str(folder / "run_imgs"), **TINY),
                   show=False)
    gan, _ = runs.load_gan(str(checkpoint_dir))
    normals = np.random.default_rng(3).standard_normal((2, TINY["z_dim"])).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    directions = editing.Directions(["Smiling", "Young"], normals, np.array([0.9, 0.8]), np.array([0.5, 0.5]),
                                    editing.network_fingerprint(drawing.ready_generator(gan)))
    editing.save_directions(directions, str(checkpoint_dir))
    return checkpoint_dir


def face_pixels(image) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.screenshot())).convert("RGB"), dtype=np.int16)


def wait_for(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_the_interpolation_notebook_shows_the_gif_and_the_explorer_redraws_as_a_slider_moves(
        session, folder, trained_run, screenshots):
    lab, context = session
    testimgs = folder / "testimgs"
    browser.with_parameters(ROOT / "interpolate.ipynb", folder / "interpolate.ipynb", dict(
        checkpoint_dir=str(trained_run), waypoints=[[0, 3], [9, 3]], frames=7, upscale=2,
        gif_path=str(testimgs / "test.gif"), strip_path=str(testimgs / "examples.png")))
    page = browser.open_notebook(context, lab, "interpolate.ipynb")
    browser.run_all(page, timeout=180)
    check_clean(page, screenshots, "interpolate")
    shown = [mime for output in browser.outputs(page) for mime in output.get("data", {})]
    assert "image/gif" in shown and shown.count("image/png") >= 2  # the GIF, the strip and the modes' picture
    face = page.locator(".widget-image").last
    handles = page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle")
    assert face.count() == 1 and handles.count() == 3, page_text(page)[-3000:]  # seed, Smiling, Young
    face.scroll_into_view_if_needed()
    before = face_pixels(face)
    smiling = handles.nth(1)
    smiling.focus()
    for _ in range(8):  # +2 in steps of 0.25
        smiling.press("ArrowRight")
    assert wait_for(lambda: not np.array_equal(face_pixels(face), before)), "the face did not change"
    page.screenshot(path=os.path.join(screenshots, "explorer.png"))
    for _ in range(8):
        smiling.press("ArrowLeft")
    assert wait_for(lambda: np.array_equal(face_pixels(face), before)), "moving back did not restore the face"
    shutil.copy(testimgs / "test.gif", os.path.join(screenshots, "test.gif"))
