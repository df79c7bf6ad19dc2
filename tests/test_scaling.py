"""The scaling experiment's pieces: the power-law fit against numpy's, budgets turned into steps
against torch's FLOP counter, and a tiny isoFLOP run."""
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.training import get_train_preset
from llmcourse.training.scaling import fit_power_law, frontier, isoflop_runs, steps_for_budget


def test_power_law_fit_equals_numpys_least_squares_on_logs():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e9, 1e13, 7)
    y = 40 * x ** -0.08 * np.exp(rng.normal(0, 0.01, len(x)))
    a, b = fit_power_law(x, y)
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    assert b == pytest.approx(slope, rel=1e-9) and math.log(a) == pytest.approx(intercept, rel=1e-9)
    assert fit_power_law(x, 3 * x ** -0.5) == pytest.approx((3, -0.5), rel=1e-9)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2], [1, -1])


def test_a_budget_buys_the_steps_that_torch_counts():
    shape = get_preset("course", d_model=64, n_layer=2)
    train = get_train_preset("course", batch_size=4)
    model = GPT(shape)
    x = torch.randint(0, shape.vocab_size, (train.batch_size, train.context_length))
    with FlopCounterMode(display=False) as counter:
        model(x, x)[1].backward()
    budget = 3e10
    steps = steps_for_budget(budget, shape, train)
    # the formula counts 6 per weight per token and the attention's scores; torch counts every
    # matmul it runs
    assert steps * counter.get_total_flops() == pytest.approx(budget, rel=0.1)


def test_isoflop_runs_train_each_shape_on_its_budget_and_the_frontier_picks_the_best():
    tokens = np.random.default_rng(0).integers(0, 256, 20_000).astype(np.uint16)
    shapes = {f"width {d}": get_preset("tiny", vocab_size=256, context_length=32, n_layer=1,
                                       d_model=d)
              for d in (16, 32)}
    train = get_train_preset("smoke", precision="fp32", eval_batches=2)
    records = isoflop_runs(shapes, [2e8, 6e8], tokens, tokens, train)
    expected = [(b, s) for b in (2e8, 6e8) for s in shapes]
    assert [(r["budget"], r["shape"]) for r in records] == expected
    assert all(math.isfinite(r["val_loss"])
               and r["steps"] == steps_for_budget(r["budget"], shapes[r["shape"]], train)
               for r in records)
    best = frontier(records)
    assert [r["budget"] for r in best] == [2e8, 6e8]
    for r in best:
        assert r["val_loss"] == min(q["val_loss"] for q in records if q["budget"] == r["budget"])
