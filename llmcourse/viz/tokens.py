"""Figures for the tokenization chapter: text coloured by token, assembling merge by merge, and
compression."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from llmcourse.viz.distributions import visible
from llmcourse.viz.theme import PALETTE, SLIDER, TOP, slider_below

_LIGHT = ["#cfe3f2", "#fbe3b8", "#c7eadf", "#f6d0bf", "#f0d3e5", "#d5ecf8", "#fbf5c4"]


def _layout_tokens(tokens: Sequence[str], width: int) -> tuple[list[dict], list[dict]]:
    """Shapes (coloured boxes) and annotations (token text) for tokens laid out in monospace lines
    of `width`."""
    shapes, notes, col, row = [], [], 0, 0
    for i, token in enumerate(tokens):
        shown = visible(token)
        if col + len(shown) > width or "\n" in token and col > 0:
            col, row = 0, row + 1
        x0, x1 = col, col + max(len(shown), 1)
        shapes.append(dict(type="rect", x0=x0, x1=x1, y0=-row - 0.42, y1=-row + 0.42,
                           line=dict(width=1, color="#888"),
                           fillcolor=_LIGHT[i % len(_LIGHT)], layer="below"))
        notes.append(dict(x=(x0 + x1) / 2, y=-row, text=shown.replace("<", "&lt;"),
                          showarrow=False, font=dict(family="Courier New, monospace", size=15)))
        col = x1
    return shapes, notes


def merges_figure(text: str, segment: Callable[[int], list[str]], steps: Sequence[int],
                  width: int = 48) -> go.Figure:
    """`text` split into tokens after each number of merges in `steps` (segment(k) gives the token
    strings after the first k merges); a slider moves through them in the static page."""
    layouts = {k: _layout_tokens(segment(k), width) for k in steps}
    rows = 1 + max(-min(s["y0"] for s in shapes) for shapes, _ in layouts.values())
    last = steps[-1]
    fig = go.Figure(go.Scatter(x=[0, width], y=[0.5, -rows + 0.5], mode="markers",
                               marker=dict(opacity=0), hoverinfo="skip", showlegend=False))

    def title(k: int) -> str:
        return f"After {k:,} merges: {len(layouts[k][0])} tokens for {len(text)} characters"

    slider = [dict(label=f"{k:,}", method="relayout",
                   args=[{"shapes": layouts[k][0], "annotations": layouts[k][1],
                          "title.text": title(k)}])
              for k in steps]
    fig.update_layout(shapes=layouts[last][0], annotations=layouts[last][1],
                      height=TOP + 40 * int(rows) + 20 + SLIDER,
                      title=title(last),
                      sliders=[slider_below(slider, len(steps) - 1, "merges: ", 20)],
                      margin=dict(l=10, r=10, t=TOP, b=20 + SLIDER))
    fig.update_xaxes(visible=False, range=[-0.5, width + 0.5])
    fig.update_yaxes(visible=False, range=[-rows + 0.3, 0.7])
    return fig


def compression_figure(vocab_sizes: Sequence[int], chars_per_token: dict[str, Sequence[float]],
                       reference: tuple[str, float] | None = None) -> go.Figure:
    series = enumerate(chars_per_token.items())
    fig = go.Figure([go.Scatter(x=list(vocab_sizes), y=list(v), name=name, mode="lines+markers",
                                line=dict(color=PALETTE[i])) for i, (name, v) in series])
    if reference:
        fig.add_hline(y=reference[1], line_dash="dash", line_color=PALETTE[3],
                      annotation_text=reference[0])
    # a tick at each measured size: a log axis would label 3, 4, 5, ... 1000, 2, 3 between them
    fig.update_layout(title="Characters per token against vocabulary size", height=420,
                      xaxis_type="log",
                      xaxis=dict(title="vocabulary size", tickmode="array",
                                 tickvals=list(vocab_sizes),
                                 ticktext=[f"{v:,}" for v in vocab_sizes]),
                      yaxis_title="characters per token")
    return fig
