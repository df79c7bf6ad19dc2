"""Figures for the data chapter: corpus statistics, the LSH S-curve, and deduplication
trade-offs."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from llmcourse.viz.theme import PALETTE, SLIDER, slider_below


def document_lengths_figure(names: Sequence[str], lengths: Sequence[int],
                            split: Sequence[str]) -> go.Figure:
    """Characters per document, coloured by split (train or validation), longest first."""
    order = sorted(range(len(names)), key=lambda i: -lengths[i])
    fig = go.Figure()
    for side, color in (("train", PALETTE[0]), ("validation", PALETTE[1])):
        idx = [i for i in order if split[i] == side]
        fig.add_trace(go.Bar(x=[names[i] for i in idx], y=[lengths[i] for i in idx], name=side,
                             marker_color=color,
                             hovertemplate="%{x}: %{y:,} characters<extra></extra>"))
    # every work named: one tick per bar, in a font small enough for that (plotly would skip every
    # other one)
    fig.update_layout(title="Characters per work", height=560, yaxis_title="characters",
                      barmode="overlay",
                      xaxis=dict(categoryorder="array", categoryarray=[names[i] for i in order],
                                 tickangle=-90, dtick=1, tickfont=dict(size=11)))
    return fig


def zipf_figure(word_counts: Counter, top: int = 5000) -> go.Figure:
    """Word frequency against rank on log-log axes: a near-straight line is Zipf's law."""
    ranked = word_counts.most_common(top)
    ranks = list(range(1, len(ranked) + 1))
    fig = go.Figure(go.Scatter(x=ranks, y=[c for _, c in ranked], mode="markers",
                               marker=dict(size=4), text=[w for w, _ in ranked],
                               hovertemplate="#%{x} '%{text}': %{y:,}<extra></extra>"))
    fig.update_layout(title="Word frequency by rank (Zipf's law)", height=420,
                      xaxis_type="log", yaxis_type="log",
                      xaxis_title="rank", yaxis_title="occurrences")
    return fig


def lsh_s_curve_figure(configs: Sequence[tuple[int, int]],
                       true_pair_range: tuple[float, float] | None = None) -> go.Figure:
    """P(candidate) = 1 - (1 - s^r)^b against Jaccard s, for each (bands b, rows r)."""
    s = [i / 200 for i in range(201)]
    fig = go.Figure([go.Scatter(x=s, y=[1 - (1 - x**r) ** b for x in s], name=f"b={b}, r={r}",
                                mode="lines")
                     for b, r in configs])
    if true_pair_range:
        fig.add_vrect(x0=true_pair_range[0], x1=true_pair_range[1], fillcolor=PALETTE[2],
                      opacity=0.15, line_width=0,
                      annotation_text="true pairs", annotation_position="top left")
    fig.update_layout(title="Probability that LSH proposes a pair, by its Jaccard similarity",
                      height=420,
                      xaxis_title="Jaccard similarity s", yaxis_title="P(candidate)")
    return fig


def dedup_tradeoff_figure(results: Mapping[int, Mapping[float, tuple[float, float]]],
                          initial: int | None = None) -> go.Figure:
    """Precision and recall against the LSH threshold; a slider picks the number of permutations.
    results: num_perm -> threshold -> (precision, recall); initial: the number of permutations shown
    first (default: the largest), e.g. the one a table next to the figure reports."""
    perms = list(results)
    if not perms:
        raise ValueError("dedup_tradeoff_figure needs results for at least one number of "
                         "permutations")
    if initial is None:
        initial = perms[-1]
    if initial not in results:
        raise ValueError(f"initial={initial!r} is not among the measured numbers of "
                         f"permutations {perms}")
    shown = perms.index(initial)
    fig = go.Figure()
    for k, num_perm in enumerate(perms):
        thresholds = sorted(results[num_perm])
        for j, metric in enumerate(("precision", "recall")):
            values = [results[num_perm][t][j] for t in thresholds]
            fig.add_trace(go.Scatter(x=thresholds, y=values, name=metric,
                                     mode="lines+markers", visible=k == shown,
                                     line=dict(color=PALETTE[j]),
                                     hovertemplate=f"{metric} %{{y:.2f}}<extra></extra>"))
    # two traces (precision, recall) per number of permutations
    steps = [dict(label=str(p), method="update",
                  args=[{"visible": [i // 2 == k for i in range(2 * len(perms))]}])
             for k, p in enumerate(perms)]
    clearance = 65  # tick labels and the axis title
    fig.update_layout(title="Near-duplicate detection: Folio against modern editions",
                      height=420 + SLIDER,
                      xaxis_title="LSH threshold", yaxis_title="share", yaxis_range=[0, 1.05],
                      margin=dict(b=clearance + SLIDER),
                      sliders=[slider_below(steps, shown, "permutations: ", clearance)])
    return fig


def filter_removals_figure(removed: Mapping[str, int], total: int) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(removed), y=list(removed.values()), marker_color=PALETTE[3],
                           hovertemplate="%{x}: %{y} documents<extra></extra>"))
    fig.update_layout(title=f"Documents each quality rule removes (of {total})", height=400,
                      yaxis_title="documents")
    return fig
