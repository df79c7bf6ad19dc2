"""The minimal training loop learns: it drives one repeated batch to near-zero loss, and the loss
falls on text."""
import numpy as np
import pytest
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.minimal_loop import fit


def test_a_model_memorises_one_batch():
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=1, vocab_size=64, context_length=16))
    # exactly one window: every step sees the same batch
    tokens = np.random.default_rng(0).integers(0, 64, 17)
    losses = fit(model, tokens, steps=80, batch_size=1, context_length=16, lr=1e-2, progress=False)
    # random init: about uniform over the vocabulary
    assert losses[0] == pytest.approx(np.log(64), rel=0.1)
    assert losses[-1] < 0.05


def test_the_loss_falls_on_a_repeating_text():
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=1, vocab_size=256, context_length=32))
    text = "the cat sat on the mat. the dog sat on the log. " * 40
    tokens = np.frombuffer(text.encode(), dtype=np.uint8)
    losses = fit(model, tokens, steps=60, batch_size=8, context_length=32, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_bad_budget_is_explained():
    with pytest.raises(ValueError, match="steps must be positive"):
        fit(GPT(get_preset("tiny", n_layer=1)), np.zeros(100, dtype=np.int64), 0, 2, 8)
