"""The live attention explorer in a real kernel, driven over the Jupyter widget protocol the way a
browser drives it.

The test plays the frontend: it reads the `comm_open` messages that carry each widget's state,
sends `update` messages as if a learner typed a sentence or picked a mask, and checks that the
kernel answers with a redrawn view.
"""
import re

import pytest
import widget_protocol as protocol
from widget_protocol import open_widgets, start_kernel, stop_kernel

SETUP = """
import torch
from IPython.display import display
from llmcourse.model.attention import causal_mask, sliding_window_mask
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.viz.attention import attention_explorer

torch.manual_seed(0)
model = GPT(get_preset("tiny", n_layer=2, vocab_size=128)).eval()
display(attention_explorer(model, lambda s: [ord(c) % 128 for c in s], chr,
                           {"causal": causal_mask,
                            "sliding window": lambda t: sliding_window_mask(t, 2)},
                           "abc"))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    manager, client = start_kernel(tmp_path_factory.mktemp("kernel"))
    yield client
    stop_kernel(manager, client)


@pytest.fixture(scope="module")
def widgets(kernel):
    return open_widgets(kernel, SETUP)


def send_update(kernel, comm_id: str, state: dict) -> str:
    """Send a frontend's state change; return the view's HTML that the kernel sends back."""
    replies = protocol.send_update(kernel, comm_id, state,
                                   until=lambda value: value.startswith("<table"))
    return replies[-1]


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
    # each query's weights are a distribution (2-decimal titles)
    assert all(abs(sum(row) - 1) < 0.05 for row in rows)
    # causal: nothing after the query
    assert all(w == 0 for i, row in enumerate(rows) for w in row[i + 1:])


def test_picking_the_sliding_window_hides_distant_tokens(kernel, widgets):
    send_update(kernel, widgets["TextModel"][0], {"value": "abcdef"})
    html = send_update(kernel, widgets["DropdownModel"][0], {"index": 1})
    rows = [weights(row) for row in html.split("<tr>")[2:]]
    assert all(w == 0 for i, row in enumerate(rows) for j, w in enumerate(row)
               if j <= i - 2 or j > i)
    assert rows[-1][-1] > 0 and rows[-1][-2] > 0  # the window of 2: the token and the one before it


def test_the_layer_slider_shows_another_layers_weights(kernel, widgets):
    send_update(kernel, widgets["DropdownModel"][0], {"index": 0})
    before = weights(send_update(kernel, widgets["TextModel"][0], {"value": "layers"}))
    # the first slider: layer
    after = weights(send_update(kernel, widgets["IntSliderModel"][0], {"value": 1}))
    assert len(after) == len(before) and after != before
