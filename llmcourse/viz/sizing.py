"""The size, memory and compute calculator as figures (static-interactive) and as a live widget (in
a kernel).

All numbers come from llmcourse.model.sizing; this module only draws them.
"""
from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from llmcourse.model.config import ModelConfig, get_preset
from llmcourse.model.sizing import (
    GPU_PEAK_FLOPS,
    STRATEGIES,
    parameter_count,
    sharded_memory,
    training_compute,
    training_memory,
)
from llmcourse.viz.theme import MENU_ROW, PALETTE, SLIDER, TOP, menu_under_title, slider_below

GIB = 2**30
MODES = [("fp32", False), ("bf16-mixed", False), ("fp32", True), ("bf16-mixed", True)]
PARTS = ["weights", "gradients", "optimizer", "activations"]


def _mode_label(precision: str, checkpointing: bool) -> str:
    return precision + (" + activation checkpointing" if checkpointing else "")


def memory_figure(configs: Mapping[str, ModelConfig], batch_size: int = 8) -> go.Figure:
    """Training memory (GiB) per config at its full context, one linear panel per config (their
    scales differ by 50x; a log axis would distort stacked parts). A menu switches precision and
    activation checkpointing."""
    names = list(configs)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    for m, (precision, ckpt) in enumerate(MODES):
        for c, name in enumerate(names):
            mem = training_memory(configs[name], batch_size, precision=precision,
                                  checkpointing=ckpt)
            label = _mode_label(precision, ckpt).replace(" + ", "<br>+ ")
            for k, part in enumerate(PARTS):
                hover = (f"{part}: %{{y:.1f}} GiB<br>total: {mem.total / GIB:.1f} GiB"
                         f"<extra>{name}</extra>")
                fig.add_trace(go.Bar(
                    name=part, x=[label], y=[getattr(mem, part) / GIB],
                    marker_color=PALETTE[k], legendgroup=part, showlegend=c == 0, visible=m == 0,
                    hovertemplate=hover),
                    row=1, col=c + 1)
    per_mode = len(PARTS) * len(names)
    buttons = [dict(label=_mode_label(p, c), method="update",
                    args=[{"visible": [i // per_mode == m for i in range(len(MODES) * per_mode)]}])
               for m, (p, c) in enumerate(MODES)]
    fig.update_yaxes(title_text="GiB", row=1, col=1)
    fig.update_xaxes(showticklabels=False)
    subtitle, panel_titles = 20, 30  # the menu row sits above the subtitle and the panels' titles
    menu = menu_under_title(buttons)
    menu["pad"]["b"] += panel_titles
    fig.update_layout(
        barmode="stack", height=450 + subtitle + panel_titles + MENU_ROW,
        margin=dict(t=TOP + subtitle + panel_titles + MENU_ROW),
        title=f"Training memory with AdamW<br><sup>batch {batch_size} at full context</sup>",
        updatemenus=[menu])
    return fig


def compute_figure(runs: Mapping[str, tuple[ModelConfig, float]],
                   mfus: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6),
                   default_mfu: float = 0.4) -> go.Figure:
    """GPU-hours to train each (config, token budget) on each GPU; a slider sets the model-FLOPs
    utilisation."""
    names, gpus = list(runs), list(GPU_PEAK_FLOPS)

    def hours(gpu: str, mfu: float) -> list[float]:
        return [training_compute(cfg, tokens, gpu=gpu, mfu=mfu).gpu_hours
                for cfg, tokens in runs.values()]

    # two short lines, not one long slanted one
    labels = [name.replace(" · ", "<br>") for name in names]
    fig = go.Figure([go.Bar(name=gpu, x=labels, y=hours(gpu, default_mfu),
                            hovertemplate="%{y:,.0f} GPU-hours<extra>" + gpu + "</extra>")
                     for gpu in gpus])
    steps = [dict(label=f"{mfu:.0%}", method="restyle",
                  args=[{"y": [hours(gpu, mfu) for gpu in gpus]}])
             for mfu in mfus]
    clearance = 55  # two lines of tick labels
    slider = slider_below(steps, mfus.index(default_mfu), "MFU: ", clearance)
    fig.update_layout(
        barmode="group", height=420 + SLIDER, yaxis_type="log", yaxis_title="GPU-hours (log scale)",
        title="GPU-hours to train (6·N·D rule plus attention)", margin=dict(b=clearance + SLIDER),
        xaxis=dict(tickangle=0), sliders=[slider])
    return fig


def _summary_html(cfg: ModelConfig, batch: int, seq_len: int, precision: str, ckpt: bool) -> str:
    mem = training_memory(cfg, batch, seq_len, precision=precision, checkpointing=ckpt)
    rows = [("parameters", f"{parameter_count(cfg) / 1e6:,.1f} M")]
    rows += [(part, f"{getattr(mem, part) / GIB:,.2f} GiB") for part in PARTS]
    rows += [("<b>total</b>", f"<b>{mem.total / GIB:,.2f} GiB</b>")]
    body = "".join(f"<tr><td>{k}</td><td style='text-align:right'>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def calculator_widget(preset: str = "gpt2") -> tuple[W.Widget, go.Figure]:
    """A live calculator: sliders for the shape and batch, toggles for precision and checkpointing.
    Returns the widget and a figure of its initial state (the PDF shows that figure)."""
    base = get_preset(preset)
    layers = W.IntSlider(base.n_layer, min=1, max=48, description="layers")
    width = W.SelectionSlider(options=[64 * k for k in range(1, 65)], value=base.d_model,
                              description="d_model")
    heads = W.IntSlider(base.n_head, min=1, max=64, description="heads")
    batch = W.IntSlider(8, min=1, max=64, description="batch")
    seq = W.SelectionSlider(options=[2**k for k in range(6, 14)],
                            value=min(base.context_length, 8192), description="context")
    precision = W.ToggleButtons(options=["fp32", "bf16-mixed"], description="precision")
    ckpt = W.Checkbox(False, description="activation checkpointing")
    out = W.HTML()

    def update(_: object = None) -> None:
        try:
            cfg = base.replace(n_layer=layers.value, d_model=width.value, n_head=heads.value,
                               n_kv_head=None, context_length=max(seq.value, 1))
            out.value = _summary_html(cfg, batch.value, seq.value, precision.value, ckpt.value)
        except ValueError as err:
            # e.g. d_model not divisible by heads: say so instead of failing
            out.value = f"<span style='color:#D55E00'>{err}</span>"

    for control in (layers, width, heads, batch, seq, precision, ckpt):
        control.observe(update, names="value")
    update()
    widget = W.HBox([W.VBox([layers, width, heads, batch, seq, precision, ckpt]), out])
    as_set = {f"{preset} (as set)": base.replace(context_length=seq.value)}
    snapshot = memory_figure(as_set, batch_size=batch.value)
    return widget, snapshot


STRATEGY_NAMES = {"ddp": "DDP (everything replicated)", "zero1": "ZeRO-1 (optimizer state sharded)",
                  "zero2": "ZeRO-2 (+ gradients)", "fsdp": "FSDP / ZeRO-3 (+ weights)"}


def sharding_figure(configs: Mapping[str, ModelConfig], batch_size: int = 1,
                    devices: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
                    device_gib: float = 80, checkpointing: bool = True,
                    active: int = -1) -> go.Figure:
    """Memory per device (fp32 AdamW, a micro-batch of `batch_size` at full context) against the
    number of devices, one line per strategy; a menu picks the model (`active` first). The dashed
    line is one device's memory."""
    names = list(configs)
    active = active % len(names)
    fig = go.Figure()
    for c, name in enumerate(names):
        for k, strategy in enumerate(STRATEGIES):
            mems = [sharded_memory(configs[name], n, strategy, batch_size,
                                   checkpointing=checkpointing)
                    for n in devices]
            totals = [mem.total / GIB for mem in mems]
            label = STRATEGY_NAMES[strategy]
            fig.add_scatter(x=list(devices), y=totals, mode="lines+markers", name=label,
                            line=dict(color=PALETTE[k]), visible=c == active, legendgroup=strategy,
                            hovertemplate=f"{name}, %{{x}} devices: %{{y:.1f}} GiB each<extra>"
                                          f"{label}</extra>")
    # a trace, not a shape: a shape on a log axis takes the log of its position
    fig.add_scatter(x=[devices[0], devices[-1]], y=[device_gib] * 2, mode="lines",
                    name=f"one {device_gib:g} GiB device", line=dict(color="#555", dash="dash"),
                    hoverinfo="skip")
    per = len(STRATEGIES)
    buttons = [dict(label=name, method="restyle",
                    args=[{"visible": [i // per == c for i in range(len(names) * per)] + [True]}])
               for c, name in enumerate(names)]
    fig.update_xaxes(type="log", title="devices", tickvals=list(devices),
                     ticktext=[str(n) for n in devices])
    fig.update_yaxes(type="log", title="GiB per device")
    checkpoint_note = ", activation checkpointing" if checkpointing else ""
    fig.update_layout(title=f"Training memory per device<br><sup>fp32 AdamW, batch {batch_size} "
                            f"per device at full context{checkpoint_note}</sup>",
                      height=560 + MENU_ROW, margin=dict(t=TOP + 18 + MENU_ROW, b=150),
                      updatemenus=[menu_under_title(buttons, active)],
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.22, yanchor="top"))
    return fig


def memory_context_figure(cfg: ModelConfig, contexts: tuple[int, ...],
                          batch_sizes: tuple[int, ...],
                          title: str = "Where the memory of a training step goes") -> go.Figure:
    """The four parts of fp32 AdamW training memory (stacked) against the context length; a slider
    sets the batch size. Only the activations grow with either."""
    def parts(batch: int) -> dict[str, list[float]]:
        mems = [training_memory(cfg.replace(context_length=max(contexts)), batch, T)
                for T in contexts]
        return {part: [getattr(m, part) / GIB for m in mems] for part in PARTS}

    first = parts(batch_sizes[0])
    fig = go.Figure([go.Scatter(x=list(contexts), y=first[part], name=part, stackgroup="memory",
                                line=dict(color=PALETTE[k]),
                                hovertemplate=f"{part}: %{{y:.2f}} GiB at context "
                                              f"%{{x}}<extra></extra>")
                     for k, part in enumerate(PARTS)])
    steps = []
    for batch in batch_sizes:
        ys = parts(batch)
        steps.append(dict(label=str(batch), method="restyle",
                          args=[{"y": [ys[part] for part in PARTS]}]))
    clearance = 75
    subtitle = "<br><sup>fp32 AdamW, stacked; the slider sets the batch size</sup>"
    fig.update_layout(title=title + subtitle,
                      height=480 + SLIDER, margin=dict(t=TOP + 18, b=clearance + SLIDER),
                      sliders=[slider_below(steps, 0, "batch size: ", clearance)])
    fig.update_xaxes(title="context length (tokens)", type="log", tickvals=list(contexts),
                     ticktext=[str(T) for T in contexts])
    fig.update_yaxes(title="GiB")
    return fig
