"""The README's two pictures of the notebooks, taken in a real browser (JupyterLab in headless Chromium,
tools/browser.py): gan_new.ipynb mid-run, and interpolate.ipynb's explorer after a slider has moved.

    python tools/screenshots.py --data img_align_celeba --checkpoint my_net --out docs

--checkpoint is a trained run with attribute directions (python directions.py fits them); the training picture
resumes a copy of it for --steps more steps, so its grid shows the run's faces (the run itself is not touched).
Writes OUT/notebook-training.png and OUT/editing/explorer.png. Needs Debian's chromium and Playwright, as the
browser tests do.
"""

import argparse
import importlib.util
import os
import shutil
import tempfile
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("notebook_browser", os.path.join(ROOT, "tools", "browser.py"))
browser = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browser)


def training_picture(context, lab, folder: str, data: str, checkpoint: str, steps: int, out: str):
    run = os.path.join(folder, "my_net")
    shutil.copytree(checkpoint, run, ignore=shutil.ignore_patterns("archive", "best-*", ".lock"))
    from facegan import runs

    start = int(runs.read_losses(run)[-1]["step"]) if runs.read_losses(run) else 0
    settings = runs.read_config(run).settings()  # the run's own networks and recipe, so that it resumes
    settings.update(image_path=os.path.abspath(data), steps=start + steps, checkpoint_dir=run, fresh=False,
                    sample_dir=os.path.join(folder, "imgs"), sample_every=max(1, steps // 4), metrics_every=0)
    browser.with_parameters(os.path.join(ROOT, "gan_new.ipynb"), os.path.join(folder, "gan_new.ipynb"),
                            dict(settings, evaluation_samples=0))
    page = browser.open_notebook(context, lab, "gan_new.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + 60 * 30
    grids = os.path.join(folder, "imgs")
    while time.monotonic() < deadline and not (os.path.isdir(grids) and len(os.listdir(grids)) >= 2):
        time.sleep(1)  # mid-run: the second grid of this run is written (shown a moment later)
    time.sleep(3)
    # the progress bar (the training cell's first output) at the top; no waiting for the page to be still
    page.evaluate("""() => { const bar = document.querySelector('.widget-hprogress');
                             if (bar) bar.closest('.jp-OutputArea').scrollIntoView(); }""")
    time.sleep(1)
    page.screenshot(path=out)
    page.evaluate("window.jupyterapp.commands.execute('notebook:interrupt-kernel')")  # a clean stop, as a user's
    time.sleep(10)
    page.close()


def explorer_picture(context, lab, folder: str, checkpoint: str, out: str):
    browser.with_parameters(os.path.join(ROOT, "interpolate.ipynb"), os.path.join(folder, "interpolate.ipynb"), dict(
        checkpoint_dir=os.path.abspath(checkpoint), frames=10, upscale=2,
        gif_path=os.path.join(folder, "testimgs", "test.gif"), strip_path=os.path.join(folder, "testimgs", "e.png")))
    page = browser.open_notebook(context, lab, "interpolate.ipynb")
    browser.run_all(page, timeout=600)
    found = browser.errors(page)
    if found:
        raise RuntimeError(f"interpolate.ipynb showed errors: {found}")
    handles = page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle")
    if handles.count() < 2:
        raise RuntimeError(f"no explorer in the page: does {checkpoint} have its directions (python directions.py)?")
    handles.nth(1).focus()
    for _ in range(8):
        handles.nth(1).press("ArrowRight")
    time.sleep(3)
    box = page.locator(".widget-hbox").last
    box.scroll_into_view_if_needed()
    box.screenshot(path=out)
    page.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the faces the training picture trains on")
    parser.add_argument("--checkpoint", required=True, help="a trained run with its attribute directions")
    parser.add_argument("--steps", type=int, default=200, help="steps the training picture's run trains on")
    parser.add_argument("--out", default="docs", help="where the pictures go (default docs)")
    parser.add_argument("--only", choices=("training", "explorer"), help="take one of the two pictures")
    arguments = parser.parse_args()
    if not browser.available():
        raise SystemExit(browser.MISSING)
    folder = tempfile.mkdtemp(prefix="screenshots-")
    os.makedirs(os.path.join(arguments.out, "editing"), exist_ok=True)
    with browser.jupyter_lab(folder) as lab, browser.chromium(width=1280, height=900) as context:
        if arguments.only in (None, "training"):
            training_picture(context, lab, folder, arguments.data, arguments.checkpoint, arguments.steps,
                             os.path.join(arguments.out, "notebook-training.png"))
        if arguments.only in (None, "explorer"):
            explorer_picture(context, lab, folder, arguments.checkpoint,
                             os.path.join(arguments.out, "editing", "explorer.png"))
    shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote the pictures into {arguments.out}")


if __name__ == "__main__":
    main()
