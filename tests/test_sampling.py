"""Sampling's distribution against transformers' logits warpers, and the sampling explorer: its
static figure's numbers and controls, and its live widget in a real kernel."""
import html
import re

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from widget_protocol import open_widgets, send_update, start_kernel, stop_kernel

from llmcourse.model.config import get_preset
from llmcourse.model.generate import generate, sampling_probs
from llmcourse.model.gpt import GPT
from llmcourse.viz.sampling import next_logits, sampling_figure, sampling_samples, top_tokens


def reference_probs(logits: torch.Tensor, temperature: float,
                    top_k=None, top_p=None) -> torch.Tensor:
    """transformers' sampling distribution: its warpers in the order its generate() applies them."""
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 1.7])
@pytest.mark.parametrize("top_k, top_p",
                         [(None, None), (5, None), (None, 0.5), (None, 0.9), (40, 0.8)])
def test_sampling_probs_match_transformers(temperature, top_k, top_p):
    logits = torch.randn(8, 500, generator=torch.Generator().manual_seed(0)) * 3
    ours = sampling_probs(logits, temperature, top_k, top_p)
    theirs = reference_probs(logits, temperature, top_k, top_p)
    assert torch.equal(ours > 0, theirs > 0)  # the same tokens can be drawn
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_temperature_zero_is_greedy():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    probs = sampling_probs(logits, 0.0, top_k=5)
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    assert torch.equal(probs.sum(-1), torch.ones(3))


TEMPS = (0.0, 0.5, 1.0, 2.0)
FILTERS = {"no filter": {}, "top-k 3": {"top_k": 3}, "top-p 0.6": {"top_p": 0.6}}


@pytest.fixture(scope="module")
def figure():
    logits = torch.randn(300, generator=torch.Generator().manual_seed(2)) * 2
    samples = {(t, f): f"text at {t} with {f}" for t in TEMPS for f in FILTERS}
    fig = sampling_figure(logits, lambda i: f"t{i}", samples, TEMPS, FILTERS,
                          active_temperature=1.0)
    return logits, fig


def test_every_slider_step_shows_transformers_distribution(figure):
    logits, fig = figure
    ids = top_tokens(logits)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0 (greedy)", "0.5", "1", "2"]
    assert fig.layout.sliders[0].active == 2
    for t, step in zip(TEMPS, steps, strict=True):
        update, traces = step.args
        assert list(traces) == list(range(1 + 2 * len(FILTERS)))
        for k, options in enumerate(FILTERS.values()):
            if t == 0:  # transformers' greedy decoding is the argmax, with no distribution to warp
                expected = torch.nn.functional.one_hot(logits.argmax(), 300).float()
            else:
                expected = reference_probs(logits[None], t, **options)[0]
            assert update["y"][1 + k] == pytest.approx(expected[ids].tolist(), abs=1e-6)
            words = update["text"][1 + len(FILTERS) + k][0]
            kept = re.match(r"<b>([\d,]+) of 300 tokens can be drawn", words)
            assert int(kept.group(1).replace(",", "")) == int((expected > 0).sum())
            assert f"text at {t:g}" in words.replace(".0 ", " ")


def test_the_menu_shows_one_filter_with_its_sample(figure):
    _, fig = figure
    names = [trace.name for trace in fig.data]
    for k, button in enumerate(fig.layout.updatemenus[0].buttons):
        visible = button.args[0]["visible"]
        shown = [name for name, v in zip(names, visible, strict=True) if v]
        assert shown[:2] == ["before the filter", f"after: {list(FILTERS)[k]}"]
        assert sum(visible) == 3


def test_samples_are_what_generate_writes():
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=1, vocab_size=64, context_length=16)).eval()
    prompt = torch.tensor([[1, 2, 3]])
    samples = sampling_samples(model, prompt, lambda ids: ",".join(map(str, ids)),
                               new_tokens=20, temperatures=(0.0, 1.0),
                               filters={"top-k 4": {"top_k": 4}}, seed=5)
    # 20 tokens after a prompt of 3 do not fit a context of 16: a sliding window, as
    # generate(use_cache=False)
    expected = generate(model, prompt, 20, temperature=1.0, top_k=4, seed=5, use_cache=False)[0, 3:]
    assert samples[(1.0, "top-k 4")] == ",".join(map(str, expected.tolist()))
    assert next_logits(model, prompt).shape == (64,)


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match=r"one \(V,\) row"):
        sampling_figure(torch.zeros(2, 5), str, {})
    with pytest.raises(ValueError, match="samples has no text"):
        sampling_figure(torch.zeros(5), str, {}, (1.0,), {"no filter": {}})


LIVE = """
import torch
from IPython.display import display
from llmcourse.model.config import get_preset
from llmcourse.model.generate import generate
from llmcourse.model.gpt import GPT
from llmcourse.viz.sampling import sampling_explorer

torch.manual_seed(0)
model = GPT(get_preset("tiny", n_layer=1, vocab_size=128)).eval()
encode = lambda s: [ord(c) % 128 for c in s]
decode = lambda ids: "".join(chr(i) for i in ids)
display(sampling_explorer(model, encode, decode, "abc", new_tokens=12))
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    manager, client = start_kernel(tmp_path_factory.mktemp("kernel"))
    yield client, open_widgets(client, LIVE)
    stop_kernel(manager, client)


def percents(bars: str) -> list[float]:
    return [float(p) for p in re.findall(r"<td style='padding-left:6px'>([0-9.]+)%</td>", bars)]


def redraw(kernel, widget, value) -> tuple[str, str]:
    """(bars, text) that the explorer redraws after a change."""
    values = send_update(kernel, widget[0], {"value": value}, until=lambda v: v.startswith("<pre"))
    return [v for v in values if v.startswith("<table")][-1], values[-1]


def test_the_live_explorer_is_greedy_at_temperature_zero(live):
    kernel, widgets = live
    bars, text = redraw(kernel, widgets["temperature"], 0.0)
    assert percents(bars)[0] == 100.0 and sum(percents(bars)[1:]) == 0
    # the text is what greedy generate writes, computed here in the test process on the same model
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=1, vocab_size=128)).eval()
    greedy = generate(model, torch.tensor([[97, 98, 99]]), 12, temperature=0)[0, 3:].tolist()
    expected = "".join(chr(i) for i in greedy)
    assert text == f"<pre style='white-space:pre-wrap'><b>abc</b>{html.escape(expected)}</pre>"


def test_the_live_explorer_cuts_to_top_k(live):
    kernel, widgets = live
    send_update(kernel, widgets["temperature"][0], {"value": 1.0},
                until=lambda v: v.startswith("<pre"))
    bars, _ = redraw(kernel, widgets["top-k (0: off)"], 3)
    shown = percents(bars)
    assert sum(p > 0 for p in shown) == 3 and sum(shown) == pytest.approx(100, abs=0.2)
    assert "3 of 128 tokens can be drawn" in bars
