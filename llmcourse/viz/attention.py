"""The attention explorer: a mask next to the attention weights a model computes under it.

In the static book a menu picks the mask (causal, padding, sliding window) and a slider picks the layer and head;
both work without a kernel (the menu swaps in that mask's slider, whose steps restyle the weights). In a live kernel
`attention_explorer` adds a text box for your own sentence.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from llmcourse.viz.distributions import visible


def attention_figure(tokens: Sequence[str], maps: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
                     title: str = "What each token attends to") -> go.Figure:
    """maps: mask name -> (layers, heads, T, T) weights; masks: mask name -> (T, T) bool (True: may attend)."""
    labels = [f"{i}:{visible(t)}" for i, t in enumerate(tokens)]
    names = list(maps)
    L, H = maps[names[0]].shape[:2]
    z = lambda name, layer, head: maps[name][layer, head].tolist()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mask (white: hidden)", "attention weights"),
                        horizontal_spacing=0.14)
    fig.add_trace(go.Heatmap(z=masks[names[0]].int().tolist(), x=labels, y=labels, colorscale=[[0, "white"],
                             [1, "#0072B2"]], showscale=False, hovertemplate="%{y} sees %{x}: %{z}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Heatmap(z=z(names[0], 0, 0), x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues",
                             colorbar=dict(title="weight"), hovertemplate="%{y} -> %{x}: %{z:.2f}<extra></extra>"),
                  row=1, col=2)

    def slider(name: str) -> dict:
        steps = [dict(label=f"L{layer} H{head}", method="restyle", args=[{"z": [z(name, layer, head)]}, [1]])
                 for layer in range(L) for head in range(H)]
        return dict(steps=steps, active=0, currentvalue=dict(prefix=f"{name} mask, layer/head: "), pad=dict(t=60))

    buttons = [dict(label=name, method="update",
                    args=[{"z": [masks[name].int().tolist(), z(name, 0, 0)]}, {"sliders": [slider(name)]}])
               for name in names]
    fig.update_layout(title=title, height=560, sliders=[slider(names[0])],
                      updatemenus=[dict(buttons=buttons, x=1.0, xanchor="right", y=1.2, yanchor="bottom")])
    for col in (1, 2):
        fig.update_yaxes(autorange="reversed", type="category", row=1, col=col)
        fig.update_xaxes(type="category", tickangle=-60, row=1, col=col)
    return fig


def weights_html(tokens: Sequence[str], weights: torch.Tensor, mask: torch.Tensor) -> str:
    """A (T, T) attention matrix as an HTML table shaded by weight; hidden (masked) cells are left white."""
    head = "".join(f"<th style='writing-mode:vertical-rl;font-weight:normal'>{visible(t)}</th>" for t in tokens)
    rows = []
    for i, token in enumerate(tokens):
        cells = []
        for j in range(len(tokens)):
            w = float(weights[i, j])
            shade = f"rgba(0,114,178,{w:.2f})" if mask[i, j] else "white"
            cells.append(f"<td title='{w:.2f}' style='width:18px;height:18px;background:{shade}'></td>")
        rows.append(f"<tr><th style='text-align:right;font-weight:normal'>{visible(token)}</th>{''.join(cells)}</tr>")
    return f"<table style='border-collapse:collapse'><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def attention_explorer(model, encode, decode_one, mask_builders: Mapping[str, callable],
                       text: str = "The mouse ate the cheese.") -> W.Widget:
    """A live widget: type a sentence, pick a mask, layer and head. encode: text -> ids; decode_one: id -> str;
    mask_builders: name -> function(T) returning a (T, T) bool mask. Pure ipywidgets and HTML, so it behaves the
    same in Jupyter, Colab and VS Code."""
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
        fig.add_trace(go.Scatter(x=[0, c * x - s * y], y=[0, s * x + c * y], mode="lines+markers+text",
                                 text=["", f"pos {p}"], textposition="top center", name=f"position {p}",
                                 showlegend=False))
    r = math.hypot(x, y) * 1.25
    fig.update_layout(title="RoPE rotates each pair by an angle proportional to the position", height=480,
                      xaxis=dict(range=[-r, r], zeroline=True), yaxis=dict(range=[-r, r], scaleanchor="x"))
    return fig
