"""Re-laying the weights changes the order of bytes in memory, never what the model computes."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmcourse.model.config import get_preset
from llmcourse.model.generate import generate
from llmcourse.model.gpt import GPT
from llmcourse.model.hf_checkpoint import load_hf_checkpoint, save_hf_checkpoint
from llmcourse.model.weight_layout import set_weight_layout, tune_weight_layout, weight_layout


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(get_preset("tiny", vocab_size=300, **overrides))


@pytest.mark.parametrize("preset_overrides", [{}, {"tie_embeddings": False}],
                         ids=["tied", "untied"])
def test_column_layout_keeps_shapes_values_and_parameters(preset_overrides):
    model = tiny(**preset_overrides)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = list(model.parameters())
    set_weight_layout(model, "column")
    assert weight_layout(model) == "column"
    assert list(model.parameters()) == params  # the same Parameter objects
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            # neighbours in memory run down a column
            assert m.weight.stride() == (1, m.weight.shape[0])
    assert (model.tok_emb.weight is model.lm_head.weight) == model.cfg.tie_embeddings
    set_weight_layout(model, "row")
    assert weight_layout(model) == "row" and all(p.is_contiguous() for p in model.parameters())


def test_column_layout_still_matches_transformers_and_saves(tmp_path):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=500, n_positions=64,
                                    bos_token_id=0, eos_token_id=0)).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf_checkpoint(tmp_path / "hf")
    set_weight_layout(ours, "column")
    x = torch.randint(0, 500, (2, 20))
    prompt = x[:1, :5]
    with torch.no_grad():
        assert torch.allclose(ours(x), hf(x).logits, atol=1e-4, rtol=0)
    theirs = hf.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0,
                         eos_token_id=None)
    assert torch.equal(generate(ours, prompt, 20, temperature=0), theirs)
    # safetensors needs contiguous tensors: saving must not care
    save_hf_checkpoint(ours, tmp_path / "ours")
    again = GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert torch.allclose(again(x).logits, hf(x).logits, atol=1e-6)


def test_training_is_the_same_in_either_layout():
    """An optimizer made before re-laying keeps training the same parameters, to the same values."""
    x = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(1))
    final = {}
    for layout in ("row", "column"):
        model = tiny(dropout=0.0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        set_weight_layout(model, layout)
        for _ in range(3):
            _, loss = model(x[:, :-1], targets=x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad()
        final[layout] = [p.detach().clone() for p in model.parameters()]
    pairs = zip(final["row"], final["column"], strict=True)
    assert all(torch.allclose(r, c, atol=1e-5) for r, c in pairs)
    # the steps did change the weights
    assert not torch.equal(final["row"][0], tiny(dropout=0.0).tok_emb.weight)


@pytest.mark.parametrize("slow", ["row", "column"])
def test_tuning_keeps_the_layout_that_decodes_faster(slow):
    """A clock that makes one layout 3x slower (as a different BLAS kernel could): the tuner must
    leave the model in the other one, in the mode it found it, computing the same logits."""
    model = tiny().train()
    x = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        before = model.eval()(x)
    model.train()

    def clock(m, steps):
        return 3e-3 if weight_layout(m) == slow else 1e-3

    timings = tune_weight_layout(model, steps=2, rounds=1, timer=clock)
    assert timings[slow] == pytest.approx(3.0) and weight_layout(model) != slow and model.training
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), before, atol=1e-5, rtol=0)


def test_real_decoding_steps_are_timed():
    timings = tune_weight_layout(tiny(), steps=2, rounds=1)
    assert set(timings) == {"row", "column"} and all(0 < t < 1e4 for t in timings.values())


def test_unknown_layout_is_explained():
    message = "unknown weight layout 'diagonal'; choose one of row, column"
    with pytest.raises(ValueError, match=message):
        set_weight_layout(tiny(), "diagonal")
