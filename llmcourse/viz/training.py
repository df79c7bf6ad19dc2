"""Training curves: train and validation loss against tokens seen, with the learning rate beneath.

`LiveCurves` is a trainer callback that redraws one figure in place while training runs. It uses
IPython's display handles (display once with a display_id, then update it), the pattern that works
alike in JupyterLab, classic Jupyter, VS Code and Colab, with one workaround: JupyterLab's plotly
renderer ignores an update of a figure it has drawn, so each new frame follows a placeholder of
another MIME type (see `_draw`; tested in a real JupyterLab page in Chromium). The alternatives fail
somewhere: plotly's FigureWidget does not render in Colab (colab-cdn-widget-manager #51) and says
"Plotly is not defined" inside an ipywidgets Output (colabtools #5889); an Output holding a plotly
figure stalled nbclient's execution; and Jupyter Book shows widgets only from saved widget state.
The last frame stays in the notebook. In a book build it draws once, at the end, through `show`: an
interactive figure in the HTML, a PNG in the PDF.

>>> history = [{"kind": "train", "step": s, "tokens": 100 * s, "loss": 5 - s / 10, "lr": 1e-3}
...            for s in (1, 2)]
>>> [trace.name for trace in curves_figure({"run": history}).data]
['run: train', 'run: lr']
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import plotly.graph_objects as go
from IPython.display import display
from plotly.subplots import make_subplots

from llmcourse.viz.display import in_book_build, show
from llmcourse.viz.theme import MENU_ROW, PALETTE, TOP, menu_under_title

History = list[dict[str, Any]]


def _smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start (as TensorBoard's smoothing)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def curves_figure(runs: dict[str, History], title: str = "Training curves", smoothing: float = 0.8,
                  groups: dict[str, list[str]] | None = None,
                  baseline: float | None = None) -> go.Figure:
    """One figure for one or more runs' histories (the dicts a Trainer reports). Top: train loss
    (smoothed; the raw steps on hover) and validation loss, against tokens seen. Bottom: the
    learning rate. Clicking a legend entry hides a run. `groups` (name -> runs) adds a menu that
    shows one group of runs at a time, e.g. a learning-rate sweep, then warmup against none.
    `baseline`: a dotted line, e.g. the bigram model's validation loss."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28],
                        vertical_spacing=0.06)
    owners: list[str] = []
    for i, (name, history) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        train = [m for m in history if m.get("kind") == "train"]
        val = [m for m in history if m.get("kind") == "eval"]
        tokens = [m["tokens"] for m in train]
        losses = [m["loss"] for m in train]
        hover = "%{x:,} tokens<br>loss %{y:.3f} (this step %{customdata:.3f})"
        fig.add_scatter(x=tokens, y=_smooth(losses, smoothing), name=f"{name}: train",
                        legendgroup=name, line=dict(color=color, width=2), customdata=losses,
                        hovertemplate=hover, row=1, col=1)
        owners.append(name)
        if val:
            fig.add_scatter(x=[m["tokens"] for m in val], y=[m["val_loss"] for m in val],
                            name=f"{name}: validation", legendgroup=name, mode="lines+markers",
                            line=dict(color=color, dash="dash"),
                            hovertemplate="%{x:,} tokens<br>validation loss %{y:.3f}", row=1, col=1)
            owners.append(name)
        fig.add_scatter(x=tokens, y=[m["lr"] for m in train], name=f"{name}: lr", legendgroup=name,
                        showlegend=False, line=dict(color=color, width=1.5),
                        hovertemplate="%{x:,} tokens<br>lr %{y:.2e}", row=2, col=1)
        owners.append(name)
    if baseline is not None:
        fig.add_hline(y=baseline, line=dict(color="#777", dash="dot"),
                      annotation_text="bigram baseline", annotation_position="top right",
                      row=1, col=1)
    fig.update_yaxes(title_text="loss (nats/token)", row=1, col=1)
    fig.update_yaxes(title_text="learning rate", tickformat=".0e", row=2, col=1)
    fig.update_xaxes(title_text="tokens seen", row=2, col=1)
    fig.update_layout(title=title, height=560, hovermode="closest", legend=dict(orientation="v"))
    if groups:
        buttons = [dict(label=label, method="restyle",
                        args=[{"visible": [owner in members for owner in owners]}])
                   for label, members in groups.items()]
        fig.update_layout(height=560 + MENU_ROW, margin=dict(t=TOP + MENU_ROW),
                          updatemenus=[menu_under_title(buttons)])
        first = next(iter(groups.values()))
        for trace, owner in zip(fig.data, owners, strict=True):
            trace.visible = owner in first
    return fig


def metrics_figure(runs: dict[str, History], metrics: dict[str, str],
                   title: str = "Training curves", smoothing: float = 0.6,
                   groups: dict[str, list[str]] | None = None) -> go.Figure:
    """One panel per metric that the runs logged (`metrics`: key -> axis title), e.g. DPO's reward
    margin, preference accuracy and log-probabilities, against steps: training values smoothed
    (the raw step on hover), validation values (logged as "val_" + key) dashed with markers.
    `groups` adds a menu that shows one group of runs at a time."""
    keys = list(metrics)
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, vertical_spacing=0.05)
    owners: list[str] = []
    for i, (name, history) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        train = [m for m in history if m.get("kind") == "train"]
        val = [m for m in history if m.get("kind") == "eval"]
        for row, key in enumerate(keys, start=1):
            shown = [m for m in train if key in m]
            if shown:
                raw = [m[key] for m in shown]
                fig.add_scatter(x=[m["step"] for m in shown], y=_smooth(raw, smoothing),
                                name=f"{name}", legendgroup=name, showlegend=row == 1,
                                line=dict(color=color, width=2), customdata=raw,
                                hovertemplate=f"step %{{x}}<br>{key} %{{y:.3f}} "
                                              f"(this step %{{customdata:.3f}})", row=row, col=1)
                owners.append(name)
            checked = [m for m in val if "val_" + key in m]
            if checked:
                fig.add_scatter(x=[m["step"] for m in checked],
                                y=[m["val_" + key] for m in checked],
                                name=f"{name}: held out", legendgroup=name,
                                showlegend=row == 1, mode="lines+markers",
                                line=dict(color=color, dash="dash"),
                                hovertemplate=f"step %{{x}}<br>held-out {key} %{{y:.3f}}",
                                row=row, col=1)
                owners.append(name)
            fig.update_yaxes(title_text=metrics[key], row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(keys), col=1)
    fig.update_layout(title=title, height=170 * len(keys) + 140, hovermode="closest")
    if groups:
        buttons = [dict(label=label, method="restyle",
                        args=[{"visible": [owner in members for owner in owners]}])
                   for label, members in groups.items()]
        fig.update_layout(height=170 * len(keys) + 140 + MENU_ROW,
                          margin=dict(t=TOP + MENU_ROW),
                          updatemenus=[menu_under_title(buttons)])
        first = next(iter(groups.values()))
        for trace, owner in zip(fig.data, owners, strict=True):
            trace.visible = owner in first
    return fig


class LiveCurves:
    """A trainer callback that redraws the training curves in place, at most every `every` seconds
    (drawing costs far more than a training step of a small model). Call `close()` after training
    for the final frame."""

    def __init__(self, name: str = "run", every: float = 2.0, title: str = "Training curves",
                 baseline: float | None = None, others: dict[str, History] | None = None,
                 metrics: dict[str, str] | None = None) -> None:
        """metrics: draw these logged metrics (metrics_figure) instead of the loss and the rate."""
        self.name, self.every, self.title, self.baseline = name, every, title, baseline
        self.metrics = metrics
        self.history: History = []
        self.others = dict(others or {})  # finished runs drawn beside this one
        self._handle = None
        self._last = 0.0

    def figure(self) -> go.Figure:
        runs = {**self.others, self.name: self.history}
        if self.metrics:
            return metrics_figure(runs, self.metrics, self.title)
        return curves_figure(runs, self.title, baseline=self.baseline)

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if in_book_build() or time.monotonic() - self._last < self.every:
            return
        self._draw()

    def _draw(self) -> None:
        self._last = time.monotonic()
        # the figure's MIME bundle for the front end in use (plotly's renderers pick it), not the
        # figure itself: a figure displays itself through its own hook, which would ignore the
        # display id and add a new output
        figure = self.figure()
        bundle = figure._repr_mimebundle_()
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
            return
        # JupyterLab (and Notebook 7) hand an update to the renderer already on screen when the MIME
        # type is unchanged, and plotly's renderer there ignores it once it has drawn a graph. A
        # placeholder of another type, as tall as the figure, makes them build a fresh renderer for
        # the new frame without a jump.
        height = figure.layout.height or 500
        placeholder = {"text/html": f'<div style="height:{height}px"></div>', "text/plain": ""}
        self._handle.update(placeholder, raw=True)
        self._handle.update(bundle, raw=True)

    def close(self) -> None:
        """Draw the final frame (in a book build: the one interactive figure and its PNG)."""
        if in_book_build():
            show(self.figure())
        else:
            self._draw()


def scaling_figure(records: list[dict[str, Any]], fit: tuple[float, float] | None = None,
                   title: str = "Loss against compute, for models of several widths") -> go.Figure:
    """Validation loss against training FLOPs, one line per model shape (records from
    `llmcourse.training.scaling.isoflop_runs`), and the fitted power law L = a C^b of the best
    runs."""
    fig = go.Figure()
    for k, shape in enumerate(dict.fromkeys(r["shape"] for r in records)):
        runs = sorted((r for r in records if r["shape"] == shape), key=lambda r: r["budget"])
        fig.add_scatter(x=[r["budget"] for r in runs], y=[r["val_loss"] for r in runs],
                        mode="lines+markers",
                        name=f"{shape} ({runs[0]['params'] / 1e3:,.0f}k parameters)",
                        line=dict(color=PALETTE[k % len(PALETTE)]),
                        customdata=[[r["tokens"], r["steps"]] for r in runs],
                        hovertemplate="%{x:.1e} FLOPs: loss %{y:.3f}<br>%{customdata[0]:,} tokens, "
                                      "%{customdata[1]:,} steps<extra>" + shape + "</extra>")
    if fit is not None:
        a, b = fit
        budgets = sorted({r["budget"] for r in records})
        xs = np.geomspace(budgets[0], budgets[-1], 20)
        fig.add_scatter(x=xs, y=a * xs ** b, mode="lines", line=dict(color="#555", dash="dash"),
                        name=f"best runs: L = {a:.3g} C^{b:.3f}", hoverinfo="skip")
    fig.update_xaxes(type="log", title="training compute (FLOPs)")
    # a power law: a straight line
    fig.update_yaxes(title="validation loss (nats/token)", type="log")
    fig.update_layout(title=title, height=480,
                      legend=dict(x=1, xanchor="right", y=1, yanchor="top"))
    return fig
