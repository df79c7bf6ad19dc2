"""LoRA against PEFT, the library a reader would otherwise use: with the same A and B matrices, the
same outputs and the same merged weights, on one layer and on the whole GPT."""
import copy

import pytest
import torch
from torch import nn

from llmcourse.finetune.lora import (
    LoRALinear,
    adapter_state_dict,
    apply_lora,
    load_adapter,
    lora_layers,
    merge_lora,
    save_adapter,
    unmerge_lora,
)
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT

peft = pytest.importorskip("peft")


def small_gpt(seed: int = 0, **changes) -> GPT:
    torch.manual_seed(seed)
    return GPT(get_preset("tiny", n_layer=2, vocab_size=300, context_length=32, **changes)).eval()


def randomise(layers: dict[str, LoRALinear]) -> None:
    """B is zero at the start, which would make every comparison trivial: give A and B values."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in layers.values():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=generator))
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)


def peft_twin(base: nn.Module, ours: nn.Module, targets: list[str], rank: int,
              alpha: float) -> nn.Module:
    """PEFT's LoRA on a copy of the base model, holding our A and B."""
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    modules = dict(theirs.base_model.model.named_modules())
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            modules[name].lora_A["default"].weight.copy_(layer.lora_A)
            modules[name].lora_B["default"].weight.copy_(layer.lora_B)
    return theirs


def test_one_layer_equals_peft():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 24))
    ours = copy.deepcopy(base)
    apply_lora(ours, rank=4, alpha=8, targets=["0"])
    randomise(lora_layers(ours))
    theirs = peft_twin(base, ours, ["0"], rank=4, alpha=8)
    x = torch.randn(5, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)
    their_layer = theirs.base_model.model[0]
    torch.testing.assert_close(ours[0].delta_weight(), their_layer.get_delta_weight("default"))
    merge_lora(ours)
    their_layer.merge()
    torch.testing.assert_close(ours[0].base.weight, their_layer.base_layer.weight,
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", ["gpt2", "llama"])
def test_the_whole_model_equals_peft(shape):
    llama = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)
    changes = {} if shape == "gpt2" else llama
    base = small_gpt(**changes)
    ours = copy.deepcopy(base)
    targets = ["qkv", "o", "up", "down"] + (["gate"] if shape == "llama" else [])
    wrapped = apply_lora(ours, rank=4, alpha=16, targets=targets)
    randomise(lora_layers(ours))
    theirs = peft_twin(base, ours, targets, rank=4, alpha=16)
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == trainable
    assert len(wrapped) == 2 * len(targets)
    ids = torch.randint(0, 300, (2, 32))
    torch.testing.assert_close(ours(ids)[0], theirs(ids)[0], rtol=1e-5, atol=1e-5)
    merge_lora(ours)
    merged = theirs.merge_and_unload()
    weights, reference = dict(ours.named_parameters()), dict(merged.named_parameters())
    for name, value in reference.items():  # ours keeps each base layer under .base
        if name in weights:
            mine = weights.get(name)
        else:
            mine = weights[name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")]
        torch.testing.assert_close(mine, value, rtol=0, atol=1e-6)


def test_a_fresh_adapter_changes_nothing_and_merging_round_trips():
    base = small_gpt()
    model = copy.deepcopy(base)
    apply_lora(model, rank=2, alpha=4)
    ids = torch.randint(0, 300, (2, 16))
    assert torch.equal(model(ids)[0], base(ids)[0])  # B = 0
    assert all(p.requires_grad == ("lora_" in name) for name, p in model.named_parameters())
    randomise(lora_layers(model))
    before = model(ids)[0]
    merge_lora(model)
    torch.testing.assert_close(model(ids)[0], before, rtol=1e-5, atol=1e-5)
    unmerge_lora(model)
    weights = {n.replace(".base", ""): p for n, p in model.named_parameters() if "lora_" not in n}
    assert all(torch.allclose(weights[n], p, atol=1e-6) for n, p in base.named_parameters())


def test_the_adapter_saves_and_loads_alone(tmp_path):
    model = small_gpt()
    apply_lora(model, rank=2, alpha=4, targets=["qkv", "o"])
    randomise(lora_layers(model))
    path = save_adapter(model, tmp_path / "adapter.safetensors")
    assert set(adapter_state_dict(model)) == {f"blocks.{i}.attn.{m}.lora_{p}" for i in (0, 1)
                                              for m in ("qkv", "o") for p in "AB"}
    fresh = small_gpt()
    assert sorted(load_adapter(fresh, path)) == sorted(lora_layers(model))
    ids = torch.randint(0, 300, (2, 16))
    assert torch.equal(fresh(ids)[0], model(ids)[0])
    with pytest.raises(ValueError, match="has shape"):
        load_adapter(small_gpt(d_model=96, n_head=4), path)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rank must be a positive int"):
        LoRALinear(nn.Linear(4, 4), rank=0, alpha=1)
    with pytest.raises(ValueError, match="its linear layers are named"):
        apply_lora(small_gpt(), targets=["q_proj"])
    model = small_gpt()
    apply_lora(model)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model)


def test_trainable_rows_equal_peft_trainable_tokens():
    """Our TrainableRows against PEFT's trainable-token layer on the same embedding and rows: the
    same embeddings, the same tied-head logits, and the same gradient on the rows."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from llmcourse.finetune.lora import TiedHead, TrainableRows

    torch.manual_seed(0)
    embedding, rows = nn.Embedding(50, 8), [3, 47, 49]
    ours = TrainableRows(copy.deepcopy(embedding), rows)
    theirs = TrainableTokensLayer(copy.deepcopy(embedding), "default")
    theirs.update_layer("default", token_indices=rows)
    head = nn.Linear(8, 50, bias=False)
    head.weight = theirs.base_layer.weight
    their_head = TrainableTokensLayer(head, "default", tied_adapter=theirs)
    new_values = torch.randn(3, 8)
    with torch.no_grad():
        ours.rows.copy_(new_values)
        theirs.trainable_tokens_delta["default"].copy_(new_values)
    ids, x = torch.tensor([[3, 4, 49, 47, 0]]), torch.randn(2, 8)
    assert torch.equal(ours(ids), theirs(ids))
    assert torch.allclose(TiedHead(ours)(x), their_head(x))
    (ours(ids).sum() + TiedHead(ours)(x).square().sum()).backward()
    (theirs(ids).sum() + their_head(x).square().sum()).backward()
    assert torch.allclose(ours.rows.grad, theirs.trainable_tokens_delta["default"].grad)


def test_lora_with_new_rows_trains_only_them_and_becomes_a_plain_model_again(tmp_path):
    from llmcourse.finetune.lora import plain_model

    model = small_gpt()
    base = copy.deepcopy(model)
    apply_lora(model, rank=4, alpha=8, train_rows=[297, 298, 299])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"tok_emb.rows"} | {n for n in trainable if ".lora_" in n}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.randint(0, 300, (2, 16))
    ids[:, ::3] = 298  # a new token in the input and among the targets
    for _ in range(3):
        _, loss = model(ids, ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weight = model.tok_emb.weight.detach()
    assert torch.equal(weight[:297], base.tok_emb.weight[:297])  # the old rows never move
    assert not torch.equal(weight[297:], base.tok_emb.weight[297:])
    path = save_adapter(model, tmp_path / "adapter.safetensors")
    with torch.no_grad():
        expected = model(ids)
        fresh = copy.deepcopy(base)
        load_adapter(fresh, path)
        assert torch.equal(fresh(ids), expected)  # the rows travel with the adapter
        plain = plain_model(model)
        assert type(plain.tok_emb) is nn.Embedding and plain.lm_head.weight is plain.tok_emb.weight
        assert not lora_layers(plain)
        assert torch.allclose(plain(ids), expected, atol=1e-5)
    assert set(plain.state_dict()) == set(base.state_dict())  # loadable as the base architecture
