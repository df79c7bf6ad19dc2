"""Generation at its edges: the whole context is usable, a window slides past it without the
cache, prefill computes only the logits it needs, and bad input gets a clear error."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llmcourse.model.config import get_preset
from llmcourse.model.generate import generate, stream
from llmcourse.model.gpt import GPT


def tiny(context_length=16, **overrides):
    torch.manual_seed(0)
    return GPT(get_preset("tiny", n_layer=2, context_length=context_length, **overrides)).eval()


def test_the_last_context_position_is_usable():
    """A 16-token context holds a 6-token prompt and 10 new tokens: the 10th is returned, never fed
    back."""
    model = tiny()
    prompt = torch.randint(0, 4096, (2, 6))
    cached = generate(model, prompt, 11, temperature=0)
    assert cached.shape == (2, 17)
    assert torch.equal(cached, generate(model, prompt, 11, temperature=0, use_cache=False))
    with pytest.raises(ValueError, match="needs 17 positions, more than the context length 16"):
        generate(model, prompt, 12, temperature=0)


MODERN = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)


@pytest.mark.parametrize("overrides", [{}, MODERN])
def test_without_the_cache_a_window_slides_past_the_context(overrides):
    model = tiny(**overrides)
    prompt = torch.randint(0, 4096, (1, 20))  # longer than the context already
    out = generate(model, prompt, 30, temperature=0, use_cache=False)
    assert out.shape == (1, 50)
    # every token is the argmax of a forward pass over the 16 tokens before it
    with torch.no_grad():
        for t in range(20, 50):
            assert out[0, t] == model(out[:, t - 16:t])[0, -1].argmax()


def test_prefill_computes_only_the_last_logits():
    model = tiny(context_length=64)
    shapes = []
    model.lm_head.register_forward_hook(
        lambda module, inputs, output: shapes.append(tuple(output.shape)))
    generate(model, torch.randint(0, 4096, (3, 40)), 5, temperature=0)
    assert shapes == [(3, 1, 4096)] * 5


class CountHostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.reads += func.overloadpacket is torch.ops.aten._local_scalar_dense
        return func(*args, **(kwargs or {}))


def test_a_forward_pass_reads_no_scalars_back_one_by_one():
    model = tiny()
    with CountHostReads() as counter:
        model(torch.randint(0, 4096, (2, 8)))
    assert counter.reads == 0


def test_zero_new_tokens_returns_the_prompt():
    model = tiny()
    prompt = torch.randint(0, 4096, (1, 5))
    assert torch.equal(generate(model, prompt, 0), prompt) and list(stream(model, prompt, 0)) == []


@pytest.mark.parametrize("call, message", [
    (lambda m: generate(m, torch.zeros(1, 0, dtype=torch.long), 3), "the prompt is empty"),
    (lambda m: generate(m, torch.zeros(1, 2, dtype=torch.long), -1),
     "max_new_tokens must be an int >= 0"),
    (lambda m: generate(m, torch.zeros(2, dtype=torch.long), 3), r"\(batch, time\)"),
    (lambda m: generate(m, torch.zeros(1, 2, dtype=torch.long), 3, top_k=0), "top_k"),
])
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny())
