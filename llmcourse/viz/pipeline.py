"""The course's map: the path from text to next-token probabilities, as a figure (hover a box for
what it does)."""
from __future__ import annotations

import plotly.graph_objects as go

from llmcourse.viz.theme import PALETTE

# (label, what it does, example of what flows out of it, the chapters that build it)
STAGES: list[tuple[str, str, str, tuple[int, ...]]] = [
    ("Text", "raw characters, cleaned and deduplicated", '"The mouse ate the"', (2,)),
    ("BPE tokenizer", "splits text into frequent byte sequences",
     '["The", " mouse", " ate", " the"]', (3,)),
    ("Token IDs", "one integer per token", "[464, 10211, 15063, 262]", (3,)),
    ("Embeddings + RoPE", "a learned vector per ID; position enters as a rotation",
     "(T, d) floats", (4, 5)),
    ("RMSNorm", "rescales each vector to unit RMS", "(T, d)", (5,)),
    ("Masked multi-head attention", "each token mixes in earlier tokens only", "(T, d)", (4,)),
    ("+ residual", "adds the block's input back", "(T, d)", (5,)),
    ("RMSNorm", "rescales each vector again", "(T, d)", (5,)),
    ("SwiGLU feed-forward", "a gated MLP applied to each token alone", "(T, d)", (5,)),
    ("+ residual", "adds the input back again", "(T, d)", (5,)),
    ("LM head", "projects to one score (logit) per vocabulary entry", "(T, V) logits", (5,)),
    ("Softmax", "turns logits into probabilities", "(T, V), rows sum to 1", (1, 5)),
    ("Next-token prediction", "sample or pick the next token; train on -log p(correct)",
     'P(" cheese") = 0.31', (1, 5, 6)),
]
PARTS = {2: "Part I", 3: "Part I", 4: "Part II", 5: "Part II", 6: "Part III"}  # chapter 1 has none


def where_built(chapters: tuple[int, ...]) -> str:
    """The chapters, grouped by the book's part.

    >>> where_built((1, 5, 6))
    'chapter 1, Part II, chapter 5 and Part III, chapter 6'
    >>> where_built((4, 5))
    'Part II, chapters 4 and 5'
    """
    groups: dict[str, list[str]] = {}
    for chapter in chapters:
        groups.setdefault(PARTS.get(chapter, ""), []).append(str(chapter))
    phrases = [f"{part + ', ' if part else ''}chapter{'s' if len(numbers) > 1 else ''} "
               f"{' and '.join(numbers)}" for part, numbers in groups.items()]
    return " and ".join([", ".join(phrases[:-1]), phrases[-1]]) if len(phrases) > 1 else phrases[0]


BLOCK = range(4, 10)  # the stages repeated N times, one transformer block
# (first stage inside the skipped path, the "+ residual" stage it joins)
RESIDUALS = [(4, 6), (7, 9)]


def _where_built() -> str:
    """For print, what hovering over the boxes tells: where the course builds each of them."""
    boxes: dict[str, list[str]] = {}
    for label, _, _, chapters in STAGES:
        where = where_built(chapters)
        if label not in boxes.setdefault(where, []):
            boxes[where].append(label)
    return "Where the course builds each box: " + "; ".join(
        f"{', '.join(labels)}: {where}" for where, labels in boxes.items()) + "."


def _tint(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def pipeline_figure() -> go.Figure:
    n = len(STAGES)
    ys = [n - 1 - i for i in range(n)]
    colors = [PALETTE[0] if i in BLOCK else (PALETTE[2] if i < 3 else PALETTE[1])
              for i in range(n)]
    # each box is a horizontal bar, so hovering anywhere on it (not only at its centre) shows what
    # it does
    fig = go.Figure(go.Bar(
        y=ys, x=[3.2] * n, base=[-1.6] * n, width=0.72, orientation="h", showlegend=False,
        marker=dict(color=[_tint(c, 0.18) for c in colors], line=dict(color=colors, width=2)),
        hovertext=[f"<b>{label}</b><br>{what}<br><i>{where_built(chapters)}</i>"
                   for label, what, _, chapters in STAGES],
        hoverinfo="text"))
    for i, ((label, _what, example, _part), y) in enumerate(zip(STAGES, ys, strict=True)):
        fig.add_annotation(x=0, y=y, text=f"<b>{label}</b>", showarrow=False, font=dict(size=14))
        fig.add_annotation(x=1.8, y=y, text=example, showarrow=False, xanchor="left",
                           font=dict(family="Courier New, monospace", size=12, color="#555"))
        if i + 1 < n:
            fig.add_annotation(x=0, y=ys[i + 1] + 0.36, ax=0, ay=y - 0.36,
                               xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, arrowwidth=1.5, arrowcolor="#666",
                               text="")
    # the skip connection: the input goes around the sub-layer and is added back
    for branch, join in RESIDUALS:
        y0, y1 = ys[branch] + 0.5, ys[join]
        fig.add_shape(type="path", path=f"M 0,{y0} L -1.7,{y0} L -1.7,{y1} L -1.6,{y1}",
                      line=dict(color=PALETTE[3], width=1.5))
    top, bottom = ys[BLOCK.start] + 0.5, ys[BLOCK.stop - 1] - 0.5
    fig.add_shape(type="rect", x0=-1.8, x1=1.75, y0=bottom, y1=top,
                  line=dict(color=PALETTE[0], dash="dash"))
    fig.add_annotation(x=-1.9, y=(top + bottom) / 2, text="× N layers<br>(one block)",
                       showarrow=False, xanchor="right", font=dict(color=PALETTE[0]))
    fig.update_xaxes(visible=False, range=[-3.0, 5.0])  # room on the right for the longest example
    fig.update_yaxes(visible=False, range=[-0.7, n - 0.3])
    fig.update_layout(title="From text to the next token", height=820,
                      margin=dict(l=10, r=10, t=60, b=10),
                      meta=dict(print_caption=_where_built()))
    return fig

