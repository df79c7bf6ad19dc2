"""The display path: what each environment receives, and figures whose menus and sliders are
consistent."""
import re

import plotly.graph_objects as go
import pytest
import torch

from llmcourse.model.config import get_preset
from llmcourse.viz import display as D
from llmcourse.viz.attention import attention_figure
from llmcourse.viz.data import dedup_tradeoff_figure
from llmcourse.viz.distributions import next_token_figure
from llmcourse.viz.pipeline import STAGES, pipeline_figure, where_built
from llmcourse.viz.sizing import MODES, PARTS, calculator_widget, compute_figure, memory_figure
from llmcourse.viz.theme import SLIDER

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def shown(monkeypatch):
    outputs = []
    monkeypatch.setattr(D, "display", lambda obj, raw=False: outputs.append(obj))
    return outputs


def test_book_build_emits_html_and_png(shown, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_BOOK_BUILD", "1")
    D.show(pipeline_figure())
    (bundle,) = shown
    # plotly.js is the page's
    assert "Plotly.newPlot" in bundle["text/html"] and "<script src" not in bundle["text/html"]
    assert bundle["image/png"].startswith(PNG_MAGIC) and len(bundle["image/png"]) > 10_000


def test_widget_in_the_book_carries_its_view_and_a_png(shown, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_BOOK_BUILD", "1")
    widget, snapshot = calculator_widget("gpt2")
    D.show_widget(widget, snapshot)
    (bundle,) = shown
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert bundle["image/png"].startswith(PNG_MAGIC)


def test_outside_the_book_a_widget_is_displayed_live(shown, monkeypatch):
    monkeypatch.delenv("LLMCOURSE_BOOK_BUILD", raising=False)
    widget, snapshot = calculator_widget("gpt2")
    D.show_widget(widget, snapshot)
    assert shown == [widget]


def test_show_source_is_highlighted_markdown_of_the_real_code(shown):
    D.show_source(get_preset)
    (bundle,) = shown
    assert "```python\ndef get_preset(" in bundle["text/markdown"]
    assert "llmcourse.model.config.get_preset" in bundle["text/markdown"]


def test_memory_menu_shows_one_mode_at_a_time():
    configs = {n: get_preset(n) for n in ["gpt2", "llama-7b"]}
    fig = memory_figure(configs)
    per_mode = len(PARTS) * len(configs)
    assert len(fig.data) == len(MODES) * per_mode
    for button in fig.layout.updatemenus[0].buttons:
        visible = button.args[0]["visible"]
        assert len(visible) == len(fig.data) and sum(visible) == per_mode


def test_compute_slider_steps_cover_every_trace():
    cfg = get_preset("gpt2")
    fig = compute_figure({"a": (cfg, 1e9), "b": (cfg, 2e9)})
    for step in fig.layout.sliders[0].steps:
        ys = step.args[0]["y"]
        assert len(ys) == len(fig.data) and all(len(y) == 2 for y in ys)


def test_next_token_bars_are_the_top_k_in_order():
    probs = torch.softmax(torch.randn(5, 5), -1)
    fig = next_token_figure(probs, list("abcde"), contexts=[0, 3], top_k=3)
    assert list(fig.data[1].y) == sorted(fig.data[1].y, reverse=True)
    assert fig.data[1].y[0] == pytest.approx(probs[3].max().item())


def test_calculator_reports_an_invalid_shape_instead_of_failing():
    widget, _ = calculator_widget("gpt2")
    controls, out = widget.children
    heads = controls.children[2]
    heads.value = 7  # 768 is not divisible by 7
    assert "not divisible" in out.value


def _slider_figure():
    results = {p: {0.1: (0.5, 0.9), 0.3: (0.9, 0.4)} for p in (32, 128, 256)}
    return dedup_tradeoff_figure(results, initial=128)


def test_the_tradeoff_figure_opens_on_the_permutations_asked_for():
    fig = _slider_figure()
    shown = [trace.visible for trace in fig.data]
    assert fig.layout.sliders[0].active == 1 and shown == [False, False, True, True, False, False]
    # the slider's step and the opening agree
    assert fig.layout.sliders[0].steps[1].args[0]["visible"] == shown
    with pytest.raises(ValueError, match="64 is not among"):
        dedup_tradeoff_figure({32: {0.1: (1, 1)}}, initial=64)


def test_the_printed_caption_names_the_setting_the_png_shows():
    caption = D.print_caption(_slider_figure())
    assert caption.startswith("Printed at one setting: permutations 128.")
    assert "32 to 256" in caption
    memory = memory_figure({"gpt2": get_preset("gpt2")})
    assert "\u201cfp32\u201d in the menu" in D.print_caption(memory)
    # nothing to pick, nothing to say
    assert D.print_caption(go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))) is None


def test_the_printed_map_says_where_each_box_is_built():
    """The map's hover text (where the course builds each box) is lost in print; its caption
    carries it."""
    caption = D.print_caption(pipeline_figure())
    for label, _, _, chapters in STAGES:
        where = re.escape(where_built(chapters))
        assert re.search(re.escape(label) + r"(, [^:;]+)*: " + where, caption), label


def test_the_printed_figure_drops_its_controls_and_the_room_they_took():
    fig = _slider_figure()
    static = D._static(fig)
    assert not static.layout.sliders and not static.layout.updatemenus
    assert static.layout.height == fig.layout.height - SLIDER
    assert static.layout.margin.b == fig.layout.margin.b - SLIDER
    assert fig.layout.sliders  # the interactive figure keeps them


def test_in_the_book_a_figure_with_controls_carries_its_caption(shown, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_BOOK_BUILD", "1")
    D.show(_slider_figure())
    D.show(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    with_controls, without = shown
    assert with_controls["text/markdown"] == "*" + D.print_caption(_slider_figure()) + "*"
    assert "text/markdown" not in without


def test_a_live_only_widget_leaves_a_note_in_the_book(shown, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_BOOK_BUILD", "1")
    widget, _ = calculator_widget("gpt2")
    D.show_live(widget)
    (bundle,) = shown
    assert set(bundle) == {"text/markdown", "text/plain"}
    assert "running notebook" in bundle["text/plain"]


def test_the_caption_escapes_markdown():
    assert D._emphasis("a*b_c [x]") == r"*a\*b\_c \[x\]*"


def test_the_attention_figure_labels_every_token_and_greys_hidden_cells():
    tokens = ["The", " mouse", " ate", "<pad>", "<pad>"]
    T = len(tokens)
    causal = torch.ones(T, T).tril().bool()
    maps = {"causal": torch.softmax(torch.randn(2, 3, T, T), -1)}
    fig = attention_figure(tokens, maps, {"causal": causal})
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.tickmode == "array" and list(axis.tickvals) == list(range(T))
        # every token, whitespace made visible; a repeated token keeps its own place
        assert list(axis.ticktext) == ["The", "␣mouse", "␣ate", "<pad>", "<pad>"]
    weights = fig.data[1].z
    assert weights[0][1] is None
    assert weights[1][0] == pytest.approx(maps["causal"][0, 0, 1, 0].item())
    assert len(fig.layout.sliders[0].steps) == 2 * 3


def test_the_attention_figure_refuses_maps_that_do_not_fit_the_tokens():
    with pytest.raises(ValueError, match="expected maps"):
        attention_figure(["a", "b"], {"causal": torch.rand(1, 1, 3, 3)},
                         {"causal": torch.ones(3, 3).bool()})
    with pytest.raises(ValueError, match="same mask names"):
        attention_figure(["a"], {"causal": torch.rand(1, 1, 1, 1)},
                         {"padding": torch.ones(1, 1).bool()})
