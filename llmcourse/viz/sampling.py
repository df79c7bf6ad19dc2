"""The sampling explorer: how temperature, top-k and top-p reshape a model's next-token
distribution.

Both forms draw from `llmcourse.model.generate.sampling_probs`, the distribution `generate` samples
from.

- `sampling_figure`, for the static book: bars of the most likely next tokens, a slider for the
  temperature, a menu for the filter (none, top-k, top-p), and what the model writes with that
  setting. Every slider step restyles the bars and texts of all the filters at once, and the menu
  only shows one filter's, so the two controls combine without a kernel.
- `sampling_explorer`, live in a kernel: your own prompt, any temperature, k, p and seed, with
  the generated text. Pure ipywidgets and HTML, so it behaves the same in Jupyter, Colab and VS
  Code.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from llmcourse.model.generate import generate, sampling_probs
from llmcourse.viz.distributions import visible
from llmcourse.viz.theme import MENU_ROW, PALETTE, SLIDER, TOP, menu_under_title, slider_below

TEMPERATURES = (0.0, 0.3, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)
FILTERS: dict[str, dict] = {
    "no filter": {},
    "top-k 5": {"top_k": 5},
    "top-k 20": {"top_k": 20},
    "top-p 0.5": {"top_p": 0.5},
    "top-p 0.9": {"top_p": 0.9},
}
SHOWN = 20  # bars: the most likely tokens at temperature 1
# the distribution before the filter, drawn behind: what the filter removed shows in grey
CUT = "#d9d9d9"
WRAP = 72  # characters per line of a sample in the figure


def top_tokens(logits: torch.Tensor, shown: int = SHOWN) -> list[int]:
    """The ids of the `shown` most likely tokens of (V,) logits, most likely first."""
    return torch.topk(logits.float(), min(shown, logits.shape[-1])).indices.tolist()


def _sample_text(text: str, probs: torch.Tensor, ids: Sequence[int]) -> str:
    """What the text panel says: how many tokens can be drawn, how much mass the bars hold, and a
    sample."""
    kept, shown = int((probs > 0).sum()), probs[list(ids)].sum().item()
    lines = textwrap.wrap(" ".join(text.split()), WRAP)[:3] or [
        "(the model ended the text at once)"
    ]
    return (
        f"<b>{kept:,} of {probs.shape[-1]:,} tokens can be drawn</b>; the {len(ids)} shown hold "
        f"{shown:.0%} of the probability. A sample:<br>"
        + "<br>".join(html.escape(line) for line in lines)
    )


def sampling_figure(
    logits: torch.Tensor,
    decode_one: Callable[[int], str],
    samples: Mapping[tuple[float, str], str],
    temperatures: Sequence[float] = TEMPERATURES,
    filters: Mapping[str, dict] = FILTERS,
    active_temperature: float = 1.0,
    title: str = "How sampling reshapes the next token",
) -> go.Figure:
    """Bars of the next-token distribution of (V,) `logits` for each temperature and filter.

    samples: (temperature, filter name) -> the text the model wrote with that setting (see
    `sampling_samples`). Trace 0 is the distribution at the temperature before any filter (grey);
    then one bar trace per filter, then one text trace per filter. The slider steps through
    `temperatures`, the menu through `filters`."""
    if logits.dim() != 1:
        raise ValueError(f"logits must be one (V,) row, got shape {tuple(logits.shape)}")
    names, temps = list(filters), list(temperatures)
    missing = [(t, f) for t in temps for f in names if (t, f) not in samples]
    if missing:
        raise ValueError(f"samples has no text for (temperature, filter) {missing[:3]}")
    ids = top_tokens(logits)
    labels = [f"{rank + 1}. {visible(decode_one(i))}" for rank, i in enumerate(ids)]

    def state(t: float) -> tuple[list[list[float]], list[str]]:
        """(heights of trace 0 and of each filter's bars, each filter's text) at temperature t."""
        heights = [sampling_probs(logits, t)[ids].tolist()]
        texts = []
        for name in names:
            probs = sampling_probs(logits, t, **filters[name])
            heights.append(probs[ids].tolist())
            texts.append(_sample_text(samples[(t, name)], probs, ids))
        return heights, texts

    start = temps.index(active_temperature) if active_temperature in temps else 0
    heights, texts = state(temps[start])
    fig = make_subplots(rows=2, cols=1, row_heights=[0.78, 0.22], vertical_spacing=0.22)
    hover = "%{x}: %{y:.1%}<extra>%{fullData.name}</extra>"
    fig.add_trace(
        go.Bar(
            x=labels, y=heights[0], name="before the filter", marker_color=CUT, hovertemplate=hover
        ),
        row=1,
        col=1,
    )
    for k, name in enumerate(names):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=heights[k + 1],
                name=f"after: {name}",
                visible=k == 0,
                marker_color=PALETTE[0],
                hovertemplate=hover,
            ),
            row=1,
            col=1,
        )
    for k in range(len(names)):
        fig.add_trace(
            go.Scatter(
                x=[0],
                y=[1],
                mode="text",
                text=[texts[k]],
                textposition="bottom right",
                visible=k == 0,
                hoverinfo="skip",
                showlegend=False,
                textfont=dict(size=13),
            ),
            row=2,
            col=1,
        )
    bars, words = list(range(1, len(names) + 1)), list(range(len(names) + 1, 2 * len(names) + 1))
    steps = []
    for t in temps:
        h, s = state(t)
        label = "0 (greedy)" if t == 0 else f"{t:g}"
        steps.append(
            dict(
                label=label,
                method="restyle",
                args=[
                    {
                        "y": h + [[1]] * len(names),
                        "text": [None] * (len(names) + 1) + [[x] for x in s],
                    },
                    [0, *bars, *words],
                ],
            )
        )
    buttons = [
        dict(
            label=name,
            method="restyle",
            args=[
                {"visible": [True] + [i == k for i in range(len(names))] * 2},
                [0, *bars, *words],
            ],
        )
        for k, name in enumerate(names)
    ]
    clearance = 40
    top, bottom = TOP + 18 + MENU_ROW, clearance + SLIDER
    fig.update_layout(
        title=dict(
            text=f"{title}<br><sup>bars: the probability of each next token; "
            f"grey: before the filter</sup>"
        ),
        height=top + 480 + bottom,
        margin=dict(t=top, b=bottom),
        barmode="overlay",
        bargap=0.15,
        legend=dict(x=1, xanchor="right", y=1, yanchor="top"),
        sliders=[slider_below(steps, start, "temperature: ", clearance)],
        updatemenus=[menu_under_title(buttons)],
    )
    fig.update_yaxes(title="probability", tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(tickangle=-45, row=1, col=1)
    fig.update_xaxes(visible=False, range=[0, 1], fixedrange=True, row=2, col=1)
    fig.update_yaxes(visible=False, range=[0, 1], fixedrange=True, row=2, col=1)
    return fig


@torch.no_grad()
def next_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """(V,) logits of the token after the (1, T) prompt `ids` (its last context_length tokens)."""
    was_training = model.training
    model.eval()
    ids = ids.to(next(model.parameters()).device)
    logits = model(ids[:, -model.cfg.context_length :])[0, -1].float().cpu()
    model.train(was_training)
    return logits


def _generate(model, ids: torch.Tensor, new_tokens: int, **options) -> torch.Tensor:
    """generate(), with the KV cache when prompt and output fit the context, else with a sliding
    window."""
    fits = ids.shape[1] + new_tokens - 1 <= model.cfg.context_length
    ids = ids.to(next(model.parameters()).device)
    return generate(model, ids, new_tokens, use_cache=fits, **options).cpu()


def sampling_samples(
    model,
    ids: torch.Tensor,
    decode: Callable[[list[int]], str],
    new_tokens: int = 40,
    temperatures: Sequence[float] = TEMPERATURES,
    filters: Mapping[str, dict] = FILTERS,
    seed: int = 0,
    eos_id: int | None = None,
) -> dict[tuple[float, str], str]:
    """What `generate` writes after the (1, T) prompt for every temperature and filter, from the
    same seed."""
    out = {}
    for t in temperatures:
        for name, options in filters.items():
            tokens = _generate(
                model, ids, new_tokens, temperature=t, seed=seed, eos_id=eos_id, **options
            )
            new = [i for i in tokens[0, ids.shape[1] :].tolist() if i != eos_id]
            out[(t, name)] = decode(new)
    return out


def bars_html(logits: torch.Tensor, probs: torch.Tensor, decode_one: Callable[[int], str]) -> str:
    """The most likely next tokens as an HTML table of bars: the probability after the settings
    (blue) over the one at temperature 1 without a filter (grey), and how many tokens can be
    drawn."""
    ids = top_tokens(logits)
    before, after = torch.softmax(logits.float(), -1)[ids].tolist(), probs[ids].tolist()
    names = [visible(decode_one(i)) for i in ids]
    label = "text-align:right;padding-right:6px;font-family:monospace"
    bar = "position:absolute;height:{h}px;top:{top}px;width:{w:.1f}%;background:{color}"
    rows = []
    for name, b, a in zip(names, before, after, strict=True):
        grey = bar.format(h=14, top=0, w=100 * b, color=CUT)
        blue = bar.format(h=8, top=3, w=100 * a, color=PALETTE[0])
        rows.append(
            f"<tr><td style='{label}'>{html.escape(name)}</td>"
            f"<td style='width:320px'><div style='position:relative;height:14px'>"
            f"<div style='{grey}'></div><div style='{blue}'></div>"
            f"</div></td><td style='padding-left:6px'>{100 * a:.1f}%</td></tr>"
        )
    kept, shown = int((probs > 0).sum()), sum(after)
    return (
        f"<table style='border-collapse:collapse'>{''.join(rows)}</table>"
        f"<p>{kept:,} of {probs.shape[-1]:,} tokens can be drawn; "
        f"these {len(ids)} hold {shown:.0%}.</p>"
    )


def sampling_explorer(
    model,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    prompt: str = "",
    new_tokens: int = 40,
    eos_id: int | None = None,
    prefix: Sequence[int] = (),
) -> W.Widget:
    """A live widget: a prompt, the temperature, top-k (0: off), top-p (1: off) and a seed; it shows
    the next-token bars and what the model writes. `prefix`: ids put before the prompt (such as
    an end-of-text token)."""
    box = W.Text(value=prompt, description="prompt", layout=W.Layout(width="70%"))
    temperature = W.FloatSlider(value=0.8, min=0, max=2, step=0.05, description="temperature")
    top_k = W.IntSlider(
        value=0,
        min=0,
        max=100,
        description="top-k (0: off)",
        style={"description_width": "initial"},
    )
    top_p = W.FloatSlider(
        value=1.0,
        min=0.05,
        max=1,
        step=0.05,
        description="top-p (1: off)",
        style={"description_width": "initial"},
    )
    seed = W.IntSlider(value=0, min=0, max=20, description="seed")
    bars, text = W.HTML(), W.HTML()

    def redraw(_: object = None) -> None:
        ids = torch.tensor([list(prefix) + encode(box.value)])
        if ids.shape[1] == 0:
            bars.value, text.value = "<i>type a prompt</i>", ""
            return
        options = dict(
            temperature=temperature.value,
            top_k=top_k.value or None,
            top_p=top_p.value if top_p.value < 1 else None,
        )
        logits = next_logits(model, ids)
        bars.value = bars_html(logits, sampling_probs(logits, **options), lambda i: decode([i]))
        out = _generate(model, ids, new_tokens, seed=seed.value, eos_id=eos_id, **options)
        new = [i for i in out[0, ids.shape[1] :].tolist() if i != eos_id]
        text.value = (
            f"<pre style='white-space:pre-wrap'><b>{html.escape(box.value)}</b>"
            f"{html.escape(decode(new))}</pre>"
        )

    for control in (box, temperature, top_k, top_p, seed):
        control.observe(redraw, names="value")
    redraw()
    return W.VBox([box, W.HBox([temperature, seed]), W.HBox([top_k, top_p]), bars, text])
