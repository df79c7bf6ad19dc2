"""The display path: what each environment receives, and figures whose menus and sliders are consistent."""
import pytest
import torch

from llmcourse.config import get_preset
from llmcourse.viz import display as D
from llmcourse.viz.distributions import next_token_figure
from llmcourse.viz.pipeline import pipeline_figure
from llmcourse.viz.sizing import MODES, PARTS, calculator_widget, compute_figure, memory_figure

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
    assert "Plotly.newPlot" in bundle["text/html"] and "<script src" not in bundle["text/html"]  # plotly.js is the page's
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
    assert "llmcourse.config.get_preset" in bundle["text/markdown"]


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
