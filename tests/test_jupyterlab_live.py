"""The live training curves in a real JupyterLab page, driven by headless Chromium.

The kernel-level test (test_training_curves.py) shows that the kernel sends one display and then
updates it. Widget and renderer setups break in the front end, so this test runs a real
`jupyter lab` server, opens a notebook in Chromium, runs it, and reads the plotly figure that
JupyterLab drew: it must appear while the model still trains, and its curve must grow in the same
figure, never in a second one.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from playwright.sync_api import sync_playwright

STEPS = 60
TRAIN = f"""
import time
import numpy as np, torch
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.training import Trainer, get_train_preset
from llmcourse.viz.training import LiveCurves

torch.manual_seed(0)
tokens = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)
curves = LiveCurves("lab", every=0.3)


# a real run takes seconds per step: give the page time to draw while training goes on
def slow_down(metrics):
    time.sleep(0.15)


model = GPT(get_preset("tiny", n_layer=1, vocab_size=256, context_length=32))
cfg = get_train_preset("smoke", precision="fp32", max_steps={STEPS}, eval_every=20)
Trainer(model, tokens, tokens, cfg, callbacks=[curves, slow_down], progress=False).fit()
curves.close()
print("training done")
"""
# every plotly figure in the notebook's outputs: how many, and the length of each one's first
# trace (train loss)
# (JupyterLab's plotly renderer makes the output element itself the plot)
READ_FIGURES = """() => [...document.querySelectorAll('.jp-OutputArea-output.js-plotly-plot')]
    .map(el => (el.data && el.data.length) ? el.data[0].x.length : 0)"""
DONE = ("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
        ".some(o => o.innerText.includes('training done'))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on localhost without a token, serving a folder with the notebook; yields
    its URL."""
    root = tmp_path_factory.mktemp("lab")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(TRAIN)])
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["kernelspec"] = kernelspec
    nbformat.write(notebook, root / "live.ipynb")
    port = free_port()
    log = open(root / "server.log", "w")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--allow-root"]  # CI machines run as root
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                log_tail = (root / "server.log").read_text()[-2000:]
                pytest.fail(f"jupyter lab did not start: {log_tail}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)
    log.close()


def test_live_curves_draw_and_grow_in_one_figure_while_training(lab, chromium):
    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu"]
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{lab}/lab/tree/live.ipynb")
        shown = "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')"
        page.wait_for_function(shown, timeout=120_000)
        # the kernel must be ready before the cell is run
        page.wait_for_function("""() => {
            const panel = window.jupyterapp.shell.currentWidget;
            return panel && panel.sessionContext && panel.sessionContext.session
                && panel.sessionContext.session.kernel
                && panel.sessionContext.session.kernel.connectionStatus === 'connected'
                && panel.sessionContext.session.kernel.status === 'idle'; }""", timeout=120_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        seen = []  # (number of figures, points on the curve) while the model trains
        deadline = time.monotonic() + 180
        while not page.evaluate(DONE):
            assert time.monotonic() < deadline, f"the run did not finish; figures seen: {seen}"
            figures = page.evaluate(READ_FIGURES)
            if figures:
                seen.append((len(figures), figures[0]))
            page.wait_for_timeout(250)
        page.wait_for_timeout(1000)  # the final frame may arrive with the printed line
        final = page.evaluate(READ_FIGURES)
        snapshot = json.dumps(seen)
        browser.close()
    assert not errors, errors
    assert seen, f"no figure appeared while the model trained; at the end: {final}"
    counts = {count for count, _ in seen}
    assert counts == {1}, f"the curves must redraw one figure, not add figures: {snapshot}"
    growing = sorted({points for _, points in seen})
    grew = len(growing) >= 3 and growing[0] < STEPS
    assert grew, f"the curve did not grow while training: {snapshot}"
    assert final == [STEPS], f"the last frame must hold every step: {final}"
