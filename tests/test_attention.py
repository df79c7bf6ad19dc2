"""Masks and attention as a batch of real, padded sequences needs them: padding joins causality,
padded batches give the logits of the sequences run one by one, fully hidden rows stay finite, and
chunked prefill equals one pass."""
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llmcourse.model.attention import (
    KVCache,
    attention_weights,
    causal_mask,
    naive_attention,
    padded_positions,
    padding_mask,
    sliding_window_mask,
)
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT

LLAMA = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False, n_kv_head=2)
VARIANTS = {"gpt2": {}, "llama": LLAMA}


def tiny(**overrides):
    torch.manual_seed(0)
    return GPT(get_preset("tiny", n_layer=2, context_length=64, **overrides)).eval()


def reference_attention(q, k, v, mask):
    """Attention written out in float64, one query at a time, over exactly the keys the mask lets it
    see."""
    B, H, T, D = q.shape
    out = torch.zeros(B, H, T, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                seen = mask[b, 0, t].nonzero().flatten()
                if len(seen):
                    s = (k[b, h, seen].double() @ q[b, h, t].double()) / math.sqrt(D)
                    out[b, h, t] = torch.softmax(s, 0) @ v[b, h, seen].double()
    return out


def test_sliding_window_mask_by_brute_force():
    T, w = 7, 3
    expected = torch.tensor([[0 <= t - s < w for s in range(T)] for t in range(T)])
    assert torch.equal(sliding_window_mask(T, w), expected)
    with pytest.raises(ValueError, match="at least one key"):
        sliding_window_mask(4, 0)


def test_padding_masks_hide_exactly_the_pads():
    lengths = torch.tensor([5, 2, 0])
    right = padding_mask(lengths, 5)[:, 0, 0]
    left = padding_mask(lengths, 5, side="left")[:, 0, 0]
    assert right.sum(1).tolist() == [5, 2, 0] and left.sum(1).tolist() == [5, 2, 0]
    assert right[1].tolist() == [True, True, False, False, False]
    assert left[1].tolist() == [False, False, False, True, True]
    assert padded_positions(lengths, 5, side="left")[1].tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_padding_mask_does_not_open_the_future(variant):
    """A caller's mask joins the causal mask: a later token must not change an earlier position's
    logits."""
    model = tiny(**VARIANTS[variant])
    a = torch.randint(0, 4096, (1, 8))
    b = a.clone()
    b[0, 6] = (b[0, 6] + 1) % 4096
    mask = padding_mask(torch.tensor([8]), 8)
    for fused in (True, False):
        model.set_fused_attention(fused)
        assert torch.equal(model(a, mask=mask)[0, :6], model(b, mask=mask)[0, :6])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "naive"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_batch_equals_sequences_one_by_one(variant, side, fused):
    model = tiny(**VARIANTS[variant])
    model.set_fused_attention(fused)
    torch.manual_seed(1)
    sequences = [torch.randint(1, 4096, (n,)) for n in (9, 4, 1)]
    T = max(len(s) for s in sequences)
    lengths = torch.tensor([len(s) for s in sequences])
    batch = torch.zeros(len(sequences), T, dtype=torch.long)
    for i, s in enumerate(sequences):
        if side == "right":
            batch[i, :len(s)] = s
        else:
            batch[i, T - len(s):] = s
    mask = padding_mask(lengths, T, side)
    logits = model(batch, mask=mask, positions=padded_positions(lengths, T, side))
    # left padding hides every key from the pad queries: still no NaN
    assert torch.isfinite(logits).all()
    for i, s in enumerate(sequences):
        alone = model(s[None])[0]
        real = logits[i, :len(s)] if side == "right" else logits[i, T - len(s):]
        torch.testing.assert_close(real, alone, atol=1e-5, rtol=0)


def test_both_paths_match_attention_written_out_over_the_visible_keys():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    mask = causal_mask(6) & padding_mask(torch.tensor([6, 3]), 6, side="left")  # (2, 1, 6, 6)
    expected = reference_attention(q, k, v, mask)
    torch.testing.assert_close(naive_attention(q, k, v, mask).double(), expected, atol=1e-5, rtol=0)
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(fused.double(), expected, atol=1e-5, rtol=0)


class CountSoftmax(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten._softmax, torch.ops.aten.softmax):
            self.calls.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_recorded_attention_is_one_float32_softmax():
    model = tiny().to(torch.bfloat16)
    ids = torch.randint(0, 4096, (1, 12))
    with CountSoftmax() as counter:
        maps = model.attention_maps(ids)
    assert counter.calls == [torch.float32] * 2  # one softmax per layer, in float32
    assert maps.dtype == torch.float32
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 4, 12), atol=1e-5, rtol=0)
    q, k = torch.randn(2, 1, 1, 4, 16, dtype=torch.bfloat16)
    exact = torch.softmax((q.double() @ k.double().transpose(-2, -1)) / 4, -1)
    # the only rounding left is that of the bf16 scores
    torch.testing.assert_close(attention_weights(q, k).double(), exact, atol=2e-2, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_prefill_equals_one_pass(variant):
    """Feeding a prompt in chunks through the KV cache (queries that are the last T of S keys) must
    give the logits of one full pass."""
    model = tiny(**VARIANTS[variant])
    ids = torch.randint(0, 4096, (2, 20))
    cache = KVCache.empty(model.cfg, 2, ids.device, torch.float32, 20)
    chunks = [model(ids[:, a:b], cache=cache) for a, b in ((0, 7), (7, 8), (8, 20))]
    torch.testing.assert_close(torch.cat(chunks, dim=1), model(ids), atol=1e-5, rtol=0)


def test_last_only_gives_the_last_logits():
    model = tiny()
    ids = torch.randint(0, 4096, (2, 10))
    torch.testing.assert_close(model(ids, last_only=True), model(ids)[:, -1:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mask, error, message", [
    (torch.ones(5, 5, dtype=torch.long), TypeError, "bool"),
    (torch.ones(1, 1, 1, 4, dtype=torch.bool), ValueError, "must end in"),
])
def test_bad_masks_are_explained(mask, error, message):
    with pytest.raises(error, match=message):
        tiny()(torch.zeros(1, 5, dtype=torch.long), mask=mask)
