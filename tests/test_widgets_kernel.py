"""The live attention explorer in a real kernel, driven over the Jupyter widget protocol the way a browser drives it.

The test plays the frontend: it reads the `comm_open` messages that carry each widget's state, sends `update`
messages as if a learner typed a sentence or picked a mask, and checks that the kernel answers with a redrawn view.
"""
import queue
import re
import time

import pytest
from jupyter_client.manager import KernelManager

SETUP = """
import torch
from IPython.display import display
from llmcourse.attention import causal_mask, sliding_window_mask
from llmcourse.config import get_preset
from llmcourse.model import GPT
from llmcourse.viz.attention import attention_explorer

torch.manual_seed(0)
model = GPT(get_preset("tiny", n_layer=2, vocab_size=128)).eval()
display(attention_explorer(model, lambda s: [ord(c) % 128 for c in s], chr,
                           {"causal": causal_mask, "sliding window": lambda t: sliding_window_mask(t, 2)}, "abc"))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    manager = KernelManager(kernel_name="python3", transport="ipc",
                            ip=str(tmp_path_factory.mktemp("kernel") / "socket"))  # no open TCP ports
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def widgets(kernel):
    """model name -> (comm id, latest state) of each widget the explorer opened."""
    opened: dict[str, tuple[str, dict]] = {}
    names: dict[str, str] = {}  # comm id -> model name

    def hook(msg: dict) -> None:
        content = msg["content"]
        if msg["msg_type"] == "comm_open" and content.get("target_name") == "jupyter.widget":
            state = content["data"]["state"]
            if state["_model_name"] not in opened:
                opened[state["_model_name"]], names[content["comm_id"]] = (content["comm_id"], state), state["_model_name"]
        elif msg["msg_type"] == "comm_msg" and content["comm_id"] in names and content["data"].get("method") == "update":
            opened[names[content["comm_id"]]][1].update(content["data"]["state"])

    reply = kernel.execute_interactive(SETUP, timeout=180, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return opened


def send_update(kernel, comm_id: str, state: dict) -> str:
    """Send a frontend's state change; return the view's HTML that the kernel sends back."""
    kernel.shell_channel.send(kernel.session.msg(
        "comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            msg = kernel.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        view = msg["content"].get("data", {}).get("state", {}).get("value", "") if msg["msg_type"] == "comm_msg" else ""
        if isinstance(view, str) and view.startswith("<table"):
            return view
    raise AssertionError("the kernel sent no redrawn view")


def row_labels(html: str) -> list[str]:
    return re.findall(r"<tr><th style='text-align:right;font-weight:normal'>(.*?)</th>", html)


def weights(html: str) -> list[float]:
    return [float(w) for w in re.findall(r"title='([0-9.]+)'", html)]


def test_the_explorer_opens_its_controls_and_a_view(widgets):
    assert {"TextModel", "DropdownModel", "IntSliderModel", "HTMLModel"} <= set(widgets)
    assert row_labels(widgets["HTMLModel"][1]["value"]) == ["a", "b", "c"]


def test_typing_a_sentence_redraws_the_weights_for_it(kernel, widgets):
    html = send_update(kernel, widgets["TextModel"][0], {"value": "hello"})
    assert row_labels(html) == list("hello")
    rows = [weights(row) for row in html.split("<tr>")[2:]]
    assert all(abs(sum(row) - 1) < 0.05 for row in rows)  # each query's weights are a distribution (2-decimal titles)
    assert all(w == 0 for i, row in enumerate(rows) for w in row[i + 1:])  # causal: nothing after the query


def test_picking_the_sliding_window_hides_distant_tokens(kernel, widgets):
    send_update(kernel, widgets["TextModel"][0], {"value": "abcdef"})
    html = send_update(kernel, widgets["DropdownModel"][0], {"index": 1})
    rows = [weights(row) for row in html.split("<tr>")[2:]]
    assert all(w == 0 for i, row in enumerate(rows) for j, w in enumerate(row) if j <= i - 2 or j > i)
    assert rows[-1][-1] > 0 and rows[-1][-2] > 0  # the window of 2: the token and the one before it


def test_the_layer_slider_shows_another_layers_weights(kernel, widgets):
    send_update(kernel, widgets["DropdownModel"][0], {"index": 0})
    before = weights(send_update(kernel, widgets["TextModel"][0], {"value": "layers"}))
    after = weights(send_update(kernel, widgets["IntSliderModel"][0], {"value": 1}))  # the first slider: layer
    assert len(after) == len(before) and after != before
