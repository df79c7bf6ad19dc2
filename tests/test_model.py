"""The model, attention and generation against transformers (logits, greedy generations, sampling
filters, saved checkpoints) and against properties that must hold (causality, RoPE's relative
positions, cache = no cache)."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from llmcourse.model.attention import (
    KVCache,
    apply_rope,
    causal_mask,
    kv_cache_bytes,
    naive_attention,
    rope_tables,
)
from llmcourse.model.config import PRESETS, get_preset
from llmcourse.model.generate import generate, stream, top_k_filter, top_p_filter
from llmcourse.model.gpt import GPT
from llmcourse.model.hf_checkpoint import CheckpointError, load_hf_checkpoint, save_hf_checkpoint
from llmcourse.model.sizing import parameter_count

HF_MODELS = {
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=500,
                                               n_positions=64, bos_token_id=0, eos_token_id=0)),
    "llama-gqa-tied": lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True, rope_theta=10000.0)),
    "llama-mqa-untied": lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
        tie_word_embeddings=False, rope_theta=500000.0)),
    # Llama 3.2's RoPE scaling shrunk to a 16-wide head and a 32-token original context, so that all
    # three bands occur: a wavelength of 6.3 positions kept (< 32/4), 13 and 29 blended, the longer
    # ones divided by the factor
    "llama3-rope-scaling": lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True, rope_theta=500.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
}
# the Llama-style choices, with grouped-query attention
MODERN = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False, n_kv_head=2)


@pytest.fixture(scope="module", params=list(HF_MODELS))
def pair(request, tmp_path_factory):
    """(transformers model with random weights, our model loaded from its saved safetensors)."""
    torch.manual_seed(0)
    hf = HF_MODELS[request.param]().eval()
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, load_hf_checkpoint(folder)


def test_logits_match_transformers(pair):
    hf, ours = pair
    x = torch.randint(0, 500, (3, 40))
    with torch.no_grad():
        assert torch.allclose(ours(x), hf(x).logits, atol=1e-4, rtol=0)


def test_greedy_generations_match_transformers(pair):
    hf, ours = pair
    prompt = torch.randint(0, 500, (1, 6))
    theirs = hf.generate(prompt, max_new_tokens=30, do_sample=False, pad_token_id=0,
                         eos_token_id=None)
    assert torch.equal(generate(ours, prompt, 30, temperature=0), theirs)


def test_saved_checkpoint_loads_in_transformers(pair, tmp_path):
    hf, ours = pair
    save_hf_checkpoint(ours, tmp_path / "ours")
    again = type(hf).from_pretrained(tmp_path / "ours").eval()
    x = torch.randint(0, 500, (2, 16))
    with torch.no_grad():
        assert torch.allclose(again(x).logits, hf(x).logits, atol=1e-6)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_parameter_count_is_the_calculators(preset):
    with torch.device("meta"):
        model = GPT(get_preset(preset))
    assert sum(p.numel() for p in model.parameters()) == parameter_count(get_preset(preset))


@pytest.mark.parametrize("overrides", [{}, MODERN])
def test_fused_attention_equals_the_naive_path(overrides):
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=2, **overrides)).eval()
    x = torch.randint(0, 4096, (2, 50))
    fused = model(x)
    model.set_fused_attention(False)
    assert torch.allclose(fused, model(x), atol=1e-5)


def test_causal_mask_hides_the_future():
    """'the mouse ate the cheese': changing 'cheese' must not change what the model predicts at
    'ate'."""
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=2)).eval()
    a = torch.tensor([[10, 20, 30, 10, 40]])
    b = a.clone()
    b[0, 4] = 41
    assert torch.equal(model(a)[0, :4], model(b)[0, :4])
    assert not torch.equal(model(a)[0, 4], model(b)[0, 4])
    q, k, v = torch.randn(3, 2, 4, 5, 8)
    torch.testing.assert_close(naive_attention(q, k, v, causal_mask(5)),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-6, rtol=0)


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = rope_tables(16, 64)
    q, k = torch.randn(16), torch.randn(16)
    def score(m, n):
        rotated_q = apply_rope(q[None], cos[m:m + 1], sin[m:m + 1])
        rotated_k = apply_rope(k[None], cos[n:n + 1], sin[n:n + 1])
        return (rotated_q @ rotated_k.T).item()
    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


@pytest.mark.parametrize("options", [dict(temperature=0), dict(temperature=0.8, top_k=50, seed=3),
                                     dict(temperature=1.0, top_p=0.9, seed=4)])
def test_kv_cache_gives_identical_tokens(options):
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=2, **MODERN))
    prompt = torch.randint(0, 4096, (2, 7))
    assert torch.equal(generate(model, prompt, 40, use_cache=True, **options),
                       generate(model, prompt, 40, use_cache=False, **options))


def test_seed_stream_and_end_of_text():
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=1))
    prompt = torch.randint(0, 4096, (1, 4))
    assert torch.equal(generate(model, prompt, 20, seed=7), generate(model, prompt, 20, seed=7))
    streamed = [t.item() for t in stream(model, prompt, 20, seed=7)]
    assert streamed == generate(model, prompt, 20, seed=7)[0, 4:].tolist()
    eos = streamed[5]
    stopped = generate(model, prompt, 20, seed=7, eos_id=eos)
    assert stopped[0, -1].item() == eos and stopped.shape[1] <= 4 + 6


def test_sampling_filters_match_transformers():
    logits = torch.randn(4, 100)
    for k in (1, 5, 50):
        ours = top_k_filter(logits, k).isinf()
        assert torch.equal(ours, TopKLogitsWarper(k)(None, logits.clone()).isinf())
    for p in (0.1, 0.5, 0.9, 1.0):
        ours = top_p_filter(logits, p).isinf()
        assert torch.equal(ours, TopPLogitsWarper(p)(None, logits.clone()).isinf())


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_kv_cache_bytes_are_what_transformers_allocates(kv_heads):
    """The formula against the bytes of the cache transformers really fills, and the bytes of our
    own cache."""
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=64, intermediate_size=96,
                                      num_hidden_layers=3, num_attention_heads=4,
                                      num_key_value_heads=kv_heads,
                                      max_position_embeddings=64)).eval()
    x = torch.randint(0, 500, (2, 24))
    with torch.no_grad():
        past = hf(x, use_cache=True).past_key_values
    theirs = sum(t.untyped_storage().nbytes()
                 for layer in past.layers for t in (layer.keys, layer.values))
    cfg = get_preset("llama-1.2b", n_layer=3, d_model=64, n_head=4, n_kv_head=kv_heads)
    cache = KVCache.empty(cfg, 2, torch.device("cpu"), torch.float32, 24)
    ours = sum(t.untyped_storage().nbytes() for t in cache.k + cache.v)
    assert theirs == ours == kv_cache_bytes(cfg, 2, 24, bytes_per_value=4)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m(torch.zeros(1, 300, dtype=torch.long)), ValueError, "longer than the context"),
    (lambda m: m(torch.tensor([[5000]])), ValueError, r"\[0, 4096\)"),
    (lambda m: m(torch.zeros(1, 3)), TypeError, "int32/int64"),
    (lambda m: generate(m, torch.zeros(1, 2, dtype=torch.long), 3, temperature=-1),
     ValueError, "temperature"),
    (lambda m: generate(m, torch.zeros(1, 2, dtype=torch.long), 3, top_p=0), ValueError, "top_p"),
    (lambda m: generate(m, torch.zeros(1, 2, dtype=torch.long), 300),
     ValueError, "more than the context"),
])
def test_bad_input_is_explained(call, error, message):
    with pytest.raises(error, match=message):
        call(GPT(get_preset("tiny", n_layer=1)))


def test_checkpoint_problems_are_all_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    model = GPT(get_preset("tiny", n_layer=2, context_length=64))
    save_hf_checkpoint(model, tmp_path / "ok")
    state = load_file(tmp_path / "ok" / "model.safetensors")
    del state["transformer.h.1.ln_2.weight"]
    state["transformer.extra.weight"] = torch.zeros(1)
    state["transformer.wpe.weight"] = torch.zeros(10, 128)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    save_file(state, tmp_path / "bad" / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_hf_checkpoint(tmp_path / "bad")
    message = str(err.value)
    assert "blocks.1.norm2.weight" in message and "extra.weight" in message
    assert "pos_emb.weight" in message
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read the safetensors"):
        load_hf_checkpoint(tmp_path / "bad")


def test_llama_checkpoint_without_a_key_projection_is_explained(tmp_path):
    """q_proj, k_proj and v_proj are stacked into one qkv matrix; a missing part must still be
    reported, not crash."""
    model = GPT(get_preset("llama-1.2b", n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ff=96,
                           vocab_size=100, context_length=32))
    save_hf_checkpoint(model, tmp_path / "ok")
    state = load_file(tmp_path / "ok" / "model.safetensors")
    del state["model.layers.1.self_attn.k_proj.weight"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    save_file(state, tmp_path / "bad" / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_hf_checkpoint(tmp_path / "bad")
    assert "missing: blocks.1.attn.qkv.weight" in str(err.value)
    assert "model.layers.1.self_attn.q_proj.weight" in str(err.value)
    reloaded = load_hf_checkpoint(tmp_path / "ok")
    assert torch.equal(reloaded.blocks[1].attn.qkv.weight, model.blocks[1].attn.qkv.weight)


def test_loading_holds_one_copy_of_the_weights(tmp_path):
    """The model is built on the meta device and takes the checkpoint's tensors: the peak memory of
    a load is about one copy of the weights (a random fp32 model plus the loaded state was more
    than two)."""
    model = GPT(get_preset("gpt2", n_layer=2, d_model=384, n_head=6))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    save_hf_checkpoint(model, tmp_path / "ckpt")
    script = (f"import resource, torch\n"
              f"from llmcourse.model.hf_checkpoint import load_hf_checkpoint\n"
              f"before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"model = load_hf_checkpoint({str(tmp_path / 'ckpt')!r})\n"
              f"print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n")
    growth = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                check=True).stdout.split()[-1])
    assert growth < 1.4 * weights, (
        f"loading grew the peak memory by {growth / weights:.2f}x the weights")
    assert not any(p.is_meta for p in load_hf_checkpoint(tmp_path / "ckpt").parameters())
