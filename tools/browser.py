"""Drive the notebooks as a person does: JupyterLab started on this machine, opened in a headless Chromium.

    with browser.jupyter_lab(folder) as lab, browser.chromium() as chromium:
        page = browser.open_notebook(chromium, lab, "gan_new.ipynb")
        browser.run_all(page, timeout=180)
        browser.errors(page)            # every error output of the notebook, as text

Chromium is Debian's package (`apt-get install chromium`, /usr/bin/chromium), driven by Playwright for Python;
nothing is downloaded (never `playwright install`). The tests (tests/test_browser.py) and the README's screenshots
(tools/screenshots.py) use this module.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import List, NamedTuple

import nbformat

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MISSING = ("needs Chromium and Playwright: apt-get install -y chromium (Debian's package, /usr/bin/chromium; or set "
           "CHROMIUM) and pip install -r requirements.txt")
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


def with_parameters(source, target, values: dict):
    """A copy of a notebook with a cell setting `values` after its parameters cell, as papermill injects them."""
    notebook = nbformat.read(str(source), as_version=4)
    index = next(number for number, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    lines = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(lines, metadata={"tags": ["injected-parameters"]}))
    nbformat.write(notebook, str(target))


def available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


class Lab(NamedTuple):
    url: str
    token: str
    folder: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(folder: str, timeout: float = 90):
    """JupyterLab serving `folder` on 127.0.0.1 with a fresh token (its own config, data and runtime folders, so
    nothing of the user's is read or written), stopped at the end."""
    port, token = _free_port(), secrets.token_hex(16)
    home = tempfile.mkdtemp(prefix="jupyter-home-")
    environment = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(home, "config"),
                       JUPYTER_RUNTIME_DIR=os.path.join(home, "runtime"), IPYTHONDIR=os.path.join(home, "ipython"),
                       JUPYTERLAB_SETTINGS_DIR=os.path.join(home, "settings"),
                       JUPYTERLAB_WORKSPACES_DIR=os.path.join(home, "workspaces"))
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the kernel logs as a user's does (the tests quiet their own)
    news = os.path.join(home, "settings", "@jupyterlab", "apputils-extension")
    os.makedirs(news)
    with open(os.path.join(news, "notification.jupyterlab-settings"), "w") as handle:
        handle.write('{"fetchNews": "false", "checkForUpdates": false}')  # no question about news, no network
    log = open(os.path.join(home, "jupyter.log"), "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"JupyterLab did not start: {open(log.name).read()[-3000:]}")
                time.sleep(0.5)
        yield Lab(url, token, folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium page context (a fresh profile each time), closed at the end."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS,
                viewport={"width": width, "height": height})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_notebook(context, lab: Lab, name: str, timeout: float = 120):
    """A page with the notebook open and its kernel idle."""
    page = context.new_page()
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")  # reset: no notebook of an earlier page reopened
    page.wait_for_function(
        """name => { const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                     const kernel = widget && widget.context && widget.context.path === name && widget.sessionContext
                                    && widget.sessionContext.session && widget.sessionContext.session.kernel;
                     return kernel && kernel.status === 'idle'; }""", arg=name, timeout=timeout * 1000)
    return page


def run_all(page, timeout: float = 300):
    """Run all cells (JupyterLab's own command) and wait until every code cell has run and the kernel is idle."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => { const widget = window.jupyterapp.shell.currentWidget;
                   const cells = widget.content.model.cells;
                   let done = true;
                   for (let index = 0; index < cells.length; index++) {
                       const cell = cells.get(index);
                       if (cell.type === 'code' && !cell.executionCount) done = false;
                   }
                   return done && widget.sessionContext.session.kernel.status === 'idle'; }""",
        timeout=timeout * 1000, polling=500)


def outputs(page) -> List[dict]:
    """Every output of every code cell, as nbformat dictionaries."""
    return page.evaluate(
        """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells; const found = [];
                   for (let index = 0; index < cells.length; index++) {
                       const cell = cells.get(index);
                       if (cell.type !== 'code') continue;
                       for (let output = 0; output < cell.outputs.length; output++)
                           found.push(Object.assign({cell: index}, cell.outputs.get(output).toJSON()));
                   }
                   return found; }""")


def errors(page) -> List[str]:
    """The error outputs of the notebook, and anything the page shows as an error ("Error displaying widget")."""
    found = [f"cell {output['cell']}: {output.get('ename')}: {output.get('evalue')}" for output in outputs(page)
             if output.get("output_type") == "error"]
    text = page.inner_text("body")
    found += [line for line in text.splitlines() if "Error displaying widget" in line or "Traceback" in line]
    return found


def stderr_text(page) -> str:
    return "".join("".join(output.get("text", "")) for output in outputs(page)
                   if output.get("output_type") == "stream" and output.get("name") == "stderr")
