"""The report card as a figure: a panel per measure, a bar per model with its 95 % interval, and
the random guess as a dashed line. Hovering a bar gives the value, the interval and the number of
items; clicking a legend entry hides a model.

>>> rows = {"model": {"cloze": (0.3, 0.25, 0.36, 200)}, "random guess": {"cloze": (0.25, 0.25,
...         0.25, 200)}}
>>> fig = report_figure(rows, {"cloze": "cloze"})
>>> [trace.name for trace in fig.data], fig.layout.shapes[0].line.dash
(['model'], 'dash')
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmcourse.viz.theme import PALETTE

Row = Mapping[str, tuple[float, float, float, int]]  # measure -> (value, low, high, n)
GUESS = "random guess"


def report_figure(rows: Mapping[str, Row], labels: Mapping[str, str],
                  title: str = "The report card", columns: int = 3) -> go.Figure:
    """`rows`: model -> measure -> (value, 95 % low, high, items); a row named "random guess" is
    drawn as a dashed line in each panel. `labels`: measure -> panel title, in panel order."""
    measures = [m for m in labels if any(m in row for row in rows.values())]
    grid = math.ceil(len(measures) / columns)
    fig = make_subplots(rows=grid, cols=columns, subplot_titles=[labels[m] for m in measures],
                        horizontal_spacing=0.08, vertical_spacing=0.22 / grid)
    models = [name for name in rows if name != GUESS]
    for k, name in enumerate(models):
        for i, measure in enumerate(measures):
            if measure not in rows[name]:
                continue
            value, low, high, n = rows[name][measure]
            bits = measure == "bits_per_byte"
            shown = f"{value:.3f}" if bits else f"{value:.1%}"
            fig.add_trace(go.Bar(
                x=[name], y=[value], name=name, legendgroup=name, showlegend=i == 0,
                marker_color=PALETTE[k % len(PALETTE)],
                error_y=dict(type="data", symmetric=False, array=[high - value],
                             arrayminus=[value - low], thickness=1.2, width=4),
                hovertemplate=(f"{name}<br>{labels[measure]}: {shown}<br>95 % interval "
                               + (f"{low:.3f} to {high:.3f}" if bits else
                                  f"{low:.1%} to {high:.1%}") + f"<br>{n} items<extra></extra>")),
                row=i // columns + 1, col=i % columns + 1)
    for i, measure in enumerate(measures):
        axis = dict(row=i // columns + 1, col=i % columns + 1)
        fig.update_xaxes(showticklabels=False, **axis)
        if measure != "bits_per_byte":
            fig.update_yaxes(tickformat=".0%", rangemode="tozero", **axis)
        if measure in rows.get(GUESS, {}):
            fig.add_hline(y=rows[GUESS][measure][0], line_dash="dash", line_color="#666",
                          line_width=1.2, **axis)
    note = "whiskers: 95 % intervals; dashed lines: a random guess"
    fig.update_layout(title=f"{title}<br><sup>{note}</sup>", height=330 * grid + 110,
                      barmode="group", bargap=0.15,
                      legend=dict(orientation="h", y=-0.04, yanchor="top", x=0),
                      margin=dict(t=90, b=40))
    return fig
