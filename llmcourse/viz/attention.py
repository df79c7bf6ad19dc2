"""The attention explorer: the attention weights a model computes under a mask, with the hidden
cells shown.

In the static book a menu picks the mask (causal, padding, sliding window) and a slider picks the
layer and head; both work without a kernel (the menu swaps in that mask's slider, whose steps
restyle the weights). In a live kernel `attention_explorer` adds a text box for your own sentence.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go
import torch

from llmcourse.viz.distributions import visible
from llmcourse.viz.theme import MENU_ROW, SLIDER, TOP, menu_under_title, slider_below

# cells the mask hides: grey, so that they differ from a weight near zero (white)
HIDDEN = "#d9d9d9"
ROW = 18  # pixels per token


def attention_figure(tokens: Sequence[str], maps: Mapping[str, torch.Tensor],
                     masks: Mapping[str, torch.Tensor],
                     title: str = "What each token attends to") -> go.Figure:
    """Attention weights, one row per query token and one column per key token, every token
    labelled on both axes.

    maps: mask name -> (layers, heads, T, T) weights; masks: mask name -> (T, T) bool (True: may
    attend). Trace 0 is the mask (grey where hidden), trace 1 the weights, drawn over it where the
    mask lets a token attend."""
    names = list(maps)
    if not names or set(names) != set(masks):
        raise ValueError(f"maps and masks need the same mask names, got {names} and "
                         f"{list(masks)}")
    T = len(tokens)
    if T == 0:
        raise ValueError("attention_figure needs at least one token")
    for name in names:
        map_ok = maps[name].dim() == 4 and tuple(maps[name].shape[-2:]) == (T, T)
        mask_ok = tuple(masks[name].shape) == (T, T)
        if not (map_ok and mask_ok):
            raise ValueError(f"{name!r}: expected maps (layers, heads, {T}, {T}) and a ({T}, {T}) "
                             f"mask for {T} tokens, got {tuple(maps[name].shape)} and "
                             f"{tuple(masks[name].shape)}")
    L, H = maps[names[0]].shape[:2]
    labels = [visible(t) for t in tokens]
    positions = list(range(T))

    def z(name: str, layer: int, head: int) -> list[list[float | None]]:
        weights, allowed = maps[name][layer, head].tolist(), masks[name].tolist()
        return [[w if ok else None for w, ok in zip(row, oks, strict=True)]
                for row, oks in zip(weights, allowed, strict=True)]

    def slider(name: str) -> dict:
        steps = [dict(label=f"L{layer} H{head}", method="restyle",
                      args=[{"z": [z(name, layer, head)]}, [1]])
                 for layer in range(L) for head in range(H)]
        return slider_below(steps, 0, f"{name} mask, layer/head: ", clearance)

    pairs = [[f"{i}:{labels[i]} attends to {j}:{labels[j]}" for j in positions] for i in positions]
    fig = go.Figure([
        go.Heatmap(z=masks[names[0]].int().tolist(), x=positions, y=positions, zmin=0, zmax=1,
                   showscale=False, colorscale=[[0, HIDDEN], [1, "white"]], hoverinfo="skip"),
        go.Heatmap(z=z(names[0], 0, 0), x=positions, y=positions, zmin=0, zmax=1,
                   colorscale="Blues", hoverongaps=False, text=pairs,
                   hovertemplate="%{text}: %{z:.2f}<extra></extra>",
                   colorbar=dict(title="weight")),
    ])
    font = 12 if T <= 32 else 9
    # room for the vertical tick labels, then the axis title
    clearance = 30 + int(0.62 * font * max(len(label) for label in labels)) + 25
    buttons = [dict(label=name, method="update",
                    args=[{"z": [masks[name].int().tolist(), z(name, 0, 0)]},
                          {"sliders": [slider(name)]}])
               for name in names]
    top, bottom = TOP + 18 + MENU_ROW, clearance + SLIDER
    subtitle = "rows: each token; columns: what it attends to; grey: hidden by the mask"
    fig.update_layout(title=dict(text=f"{title}<br><sup>{subtitle}</sup>"),
                      height=top + ROW * T + bottom, margin=dict(t=top, b=bottom),
                      sliders=[slider(names[0])], updatemenus=[menu_under_title(buttons)])
    axis = dict(tickmode="array", tickvals=positions, ticktext=labels, tickfont=dict(size=font),
                showgrid=False, zeroline=False)
    fig.update_xaxes(**axis, tickangle=-90, title="attended to (key)", range=[-0.5, T - 0.5])
    fig.update_yaxes(**axis, autorange=False, range=[T - 0.5, -0.5], title="attending (query)")
    return fig


def weights_html(tokens: Sequence[str], weights: torch.Tensor, mask: torch.Tensor) -> str:
    """A (T, T) attention matrix as an HTML table shaded by weight; cells the mask hides are
    grey."""
    head_style = "writing-mode:vertical-rl;font-weight:normal"
    head = "".join(f"<th style='{head_style}'>{visible(t)}</th>" for t in tokens)
    rows = []
    for i, token in enumerate(tokens):
        cells = []
        for j in range(len(tokens)):
            w = float(weights[i, j])
            shade = f"rgba(0,114,178,{w:.2f})" if mask[i, j] else HIDDEN
            cell_style = f"width:18px;height:18px;background:{shade}"
            cells.append(f"<td title='{w:.2f}' style='{cell_style}'></td>")
        label = f"<th style='text-align:right;font-weight:normal'>{visible(token)}</th>"
        rows.append(f"<tr>{label}{''.join(cells)}</tr>")
    header = f"<tr><th></th>{head}</tr>"
    return f"<table style='border-collapse:collapse'>{header}{''.join(rows)}</table>"


def attention_explorer(model, encode, decode_one, mask_builders: Mapping[str, callable],
                       text: str = "The mouse ate the cheese.") -> W.Widget:
    """A live widget: type a sentence, pick a mask, layer and head. encode: text -> ids;
    decode_one: id -> str; mask_builders: name -> function(T) returning a (T, T) bool mask. Pure
    ipywidgets and HTML, so it behaves the same in Jupyter, Colab and VS Code."""
    box = W.Text(value=text, description="sentence", layout=W.Layout(width="60%"))
    mask = W.Dropdown(options=list(mask_builders), description="mask")
    layer = W.IntSlider(0, 0, model.cfg.n_layer - 1, description="layer")
    head = W.IntSlider(0, 0, model.cfg.n_head - 1, description="head")
    view = W.HTML()

    def redraw(_: object = None) -> None:
        ids = torch.tensor([encode(box.value)[: model.cfg.context_length]])
        if ids.shape[1] == 0:
            view.value = "<i>type a sentence</i>"
            return
        m = mask_builders[mask.value](ids.shape[1])
        weights = model.attention_maps(ids, m)[layer.value, head.value]
        view.value = weights_html([decode_one(i) for i in ids[0].tolist()], weights, m)

    for control in (box, mask, layer, head):
        control.observe(redraw, names="value")
    redraw()
    return W.VBox([box, W.HBox([mask, layer, head]), view])


def rope_figure(pair: Sequence[float], angle_per_position: float, positions: int = 8) -> go.Figure:
    """One 2-D pair of a query, rotated by position * angle: RoPE's whole idea on a single pair."""
    import math

    x, y = pair
    fig = go.Figure()
    for p in range(positions):
        c, s = math.cos(p * angle_per_position), math.sin(p * angle_per_position)
        fig.add_trace(go.Scatter(x=[0, c * x - s * y], y=[0, s * x + c * y],
                                 mode="lines+markers+text", text=["", f"pos {p}"],
                                 textposition="top center", name=f"position {p}",
                                 showlegend=False))
    r = math.hypot(x, y) * 1.25
    fig.update_layout(title="RoPE rotates each pair by an angle proportional to the position",
                      height=480, xaxis=dict(range=[-r, r], zeroline=True),
                      yaxis=dict(range=[-r, r], scaleanchor="x"))
    return fig
