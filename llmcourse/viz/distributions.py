"""Figures of next-token distributions: what a language model outputs at each position."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch

from llmcourse.viz.theme import MENU_ROW, TOP, menu_under_title

_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥"}


def visible(token: str) -> str:
    """Make whitespace readable in axis labels: ' ' -> '␣', newline -> '⏎'."""
    return "".join(_VISIBLE.get(c, c) for c in token)


def next_token_figure(probs: torch.Tensor, tokens: Sequence[str], contexts: Sequence[int],
                      top_k: int = 15,
                      title: str = "P(next token | current token)") -> go.Figure:
    """Bars of the top_k most likely next tokens after each context id; a menu picks the context
    (works without a kernel). probs: (V, V) rows of P(next | current); tokens: the text of each
    id."""
    fig = go.Figure()
    for n, ctx in enumerate(contexts):
        p, idx = probs[ctx].topk(top_k)
        fig.add_trace(go.Bar(x=[visible(tokens[i]) for i in idx.tolist()], y=p.tolist(),
                             visible=n == 0, name=visible(tokens[ctx]),
                             hovertemplate="next %{x}: p = %{y:.3f}<extra></extra>"))
    buttons = [dict(label=f"after '{visible(tokens[ctx])}'", method="update",
                    args=[{"visible": [m == n for m in range(len(contexts))]}])
               for n, ctx in enumerate(contexts)]
    fig.update_layout(title=title, height=420 + MENU_ROW,
                      yaxis_title="probability", xaxis_title="next token",
                      margin=dict(t=TOP + MENU_ROW), updatemenus=[menu_under_title(buttons)])
    fig.update_xaxes(type="category")
    return fig


def bigram_heatmap(counts: torch.Tensor, tokens: Sequence[str], keep: Sequence[int],
                   title: str = "How often token b follows token a") -> go.Figure:
    """log10(1 + count) for the rows and columns in `keep` (a readable subset of the
    vocabulary)."""
    sub = counts[keep][:, keep].double()
    labels = [visible(tokens[i]) for i in keep]
    hover = "'%{y}' then '%{x}': %{customdata} times<extra></extra>"
    fig = go.Figure(go.Heatmap(z=torch.log10(1 + sub).tolist(), x=labels, y=labels,
                               customdata=sub.long().tolist(), hovertemplate=hover,
                               colorbar=dict(title="log10(1+n)")))
    fig.update_layout(title=title, height=640,
                      xaxis_title="next token b", yaxis_title="current token a")
    fig.update_yaxes(autorange="reversed", type="category", dtick=1)  # every token labelled
    fig.update_xaxes(type="category", dtick=1)
    return fig
