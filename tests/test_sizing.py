"""The calculator against independent references: HF transformers' real modules and torch's own
FLOP counter."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.sizing import (
    activation_elements_per_token,
    flops_per_token,
    parameter_count,
    training_compute,
    training_memory,
)
from llmcourse.training.memory import activation_bytes, measure_training_memory


def hf_gpt2(cfg, attn="sdpa"):
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.d_model,
        n_layer=cfg.n_layer, n_head=cfg.n_head, activation_function="gelu", resid_pdrop=0,
        embd_pdrop=0, attn_pdrop=0, attn_implementation=attn, bos_token_id=0, eos_token_id=0))


def hf_llama(cfg):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_dim,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.context_length,
        tie_word_embeddings=cfg.tie_embeddings))


@pytest.mark.parametrize("preset", ["gpt2", "gpt2-medium", "llama-1.2b", "llama-7b"])
def test_parameter_count_matches_transformers(preset):
    cfg = get_preset(preset)
    with torch.device("meta"):  # shapes only: a 7B model costs no memory here
        model = hf_gpt2(cfg) if cfg.mlp == "gelu" else hf_llama(cfg)
    assert parameter_count(cfg) == sum(p.numel() for p in model.parameters())


def test_known_sizes():
    assert parameter_count(get_preset("gpt2")) == 124_439_808
    assert parameter_count(get_preset("llama-7b")) == 6_738_415_616


def test_flops_per_token_matches_torch_flop_counter():
    cfg = get_preset("gpt2", n_layer=2, d_model=128, n_head=4, vocab_size=1000, context_length=64)
    model = hf_gpt2(cfg, attn="eager")  # eager attention: its matmuls are visible to the counter
    x = torch.randint(0, cfg.vocab_size, (4, 64))
    with FlopCounterMode(display=False) as counter:
        model(x, labels=x).loss.backward()
    expected = flops_per_token(cfg, 64) * x.numel()
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)


def hf_saved_bytes(model, x: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass of a transformers model's loss, its weights left
    out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, labels=x)
    return sum(n for ptr, n in saved.items() if ptr not in params)


def test_activation_estimate_is_close_to_what_autograd_saves():
    cfg = get_preset("gpt2", n_layer=2, d_model=128, n_head=4, vocab_size=1000, context_length=64)
    x = torch.randint(0, cfg.vocab_size, (4, 64))
    measured = hf_saved_bytes(hf_gpt2(cfg).eval(), x)
    estimate = training_memory(cfg, 4, 64).activations
    # The estimate counts the big tensors only (not LayerNorm statistics or index tensors): within
    # 15 %.
    assert 0.85 * measured <= estimate <= measured


def test_the_llama_estimate_is_close_to_what_transformers_llama_saves():
    """Llama's block keeps more than GPT-2's: RMSNorm computed step by step, and SwiGLU's four
    tensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def hf_llama(n_layer: int):
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=1000, hidden_size=128, intermediate_size=344, num_hidden_layers=n_layer,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            attn_implementation="sdpa", tie_word_embeddings=True))

    cfg = get_preset("llama-1.2b", n_layer=2, d_model=128, n_head=4, n_kv_head=2, d_ff=344,
                     vocab_size=1000, context_length=64)
    x = torch.randint(0, cfg.vocab_size, (4, 64))
    two, three = (hf_saved_bytes(hf_llama(n), x) for n in (2, 3))
    one_block = (three - two) / x.numel() / 4  # elements per token of one more block, in fp32
    assert activation_elements_per_token(cfg) == pytest.approx(one_block, rel=0.02)
    assert training_memory(cfg, 4, 64).activations == pytest.approx(two, rel=0.1)


def test_weights_gradients_and_adamw_state_are_the_bytes_a_real_step_holds():
    cfg = get_preset("llama-1.2b", n_layer=2, d_model=64, n_head=4, n_kv_head=2, vocab_size=500,
                     context_length=32)
    measured = measure_training_memory(GPT(cfg), torch.randint(0, cfg.vocab_size, (2, 32)))
    estimate = training_memory(cfg, 2, 32)
    assert (measured.weights, measured.gradients, measured.optimizer) == (
        estimate.weights, estimate.gradients, estimate.optimizer)


def test_mixed_precision_memory_is_what_autocast_keeps():
    """Under bf16 autocast, autograd keeps bf16 activations and the bf16 copies of the weights that
    the matrix multiplies used: the estimate's activations plus its extra 2 bytes per weight, within
    15 %."""
    cfg = get_preset("gpt2", n_layer=2, d_model=128, n_head=4, vocab_size=1000, context_length=64)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (4, 64))
    fp32, mixed = training_memory(cfg, 4, 64), training_memory(cfg, 4, 64, precision="bf16-mixed")
    measured_fp32 = activation_bytes(model, x, False)
    measured_mixed = activation_bytes(model, x, True)
    assert measured_fp32 == pytest.approx(fp32.activations, rel=0.15)
    expected_mixed = mixed.activations + mixed.weights - fp32.weights
    assert measured_mixed == pytest.approx(expected_mixed, rel=0.15)
    assert measured_mixed < measured_fp32


def test_activation_checkpointing_keeps_what_the_estimate_says():
    """With checkpointing, the forward pass keeps each block's input, the final norm's and the
    logits: the estimate's stored terms. (Its one extra block, recomputed during backward, is a peak
    the forward pass never holds.)"""
    cfg = get_preset("gpt2", n_layer=4, d_model=128, n_head=4, vocab_size=1000, context_length=64)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (4, 64))
    model.checkpoint_blocks = True
    measured = activation_bytes(model, x)
    model.checkpoint_blocks = False
    full = activation_bytes(model, x)
    estimate = training_memory(cfg, 4, 64, checkpointing=True).activations
    four_blocks = training_memory(cfg, 4, 64).activations
    three_blocks = training_memory(cfg.replace(n_layer=3), 4, 64).activations
    one_block = four_blocks - three_blocks
    assert measured == pytest.approx(estimate - one_block, rel=0.05)
    assert measured < full / 2


def test_llama2_7b_compute_is_near_the_reported_figure():
    # Llama 2 reports 184,320 A100 GPU-hours for 7B on 2T tokens; at 40 % MFU we must be within
    # 15 %.
    est = training_compute(get_preset("llama-7b"), 2e12, gpu="A100 (bf16)", mfu=0.4)
    assert est.gpu_hours == pytest.approx(184_320, rel=0.15)


@pytest.mark.parametrize("call, message", [
    (lambda: training_memory(get_preset("gpt2"), 1, 4096), "longer than the context"),
    (lambda: training_memory(get_preset("gpt2"), 1, precision="fp8"), "precision"),
    (lambda: training_compute(get_preset("gpt2"), 1e9, gpu="TPU"), "unknown GPU"),
    (lambda: training_compute(get_preset("gpt2"), 1e9, mfu=1.5), "mfu"),
])
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()
