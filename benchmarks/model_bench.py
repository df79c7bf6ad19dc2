"""Part II benchmarks, one measurement per process (prints one JSON line):

    python benchmarks/model_bench.py train {ours,lfs,hf} {fp32,bf16}   # training-step tokens/s
    python benchmarks/model_bench.py generate {ours,ours-row,ours-nocache,hf} [bf16]   # greedy tokens/s, GPT-2 124M

Generation: `ours` and `ours-nocache` first let `tune_weight_layout` pick the weights' memory order (untimed, like
building the model; the seconds it took are reported); `ours-row` keeps nn.Linear's row order.

Training shape (the issue's): 6 layers, 6 heads, d 384, context 256, batch 8, GPT-2's 50,257-token vocabulary,
AdamW, dropout 0. `lfs` is llms-from-scratch's ch04 GPTModel, installed --no-deps into benchmarks/.peers (its full
dependency tree pulls TensorFlow); `hf` is transformers' GPT2LMHeadModel with SDPA attention.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import nullcontext

import torch

B, T, STEPS, WARMUP = 8, 256, 6, 2
SHAPE = dict(n_layer=6, n_head=6, d_model=384, context_length=256, vocab_size=50257)


def build(which: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if which == "ours":
        from llmcourse.model.config import get_preset
        from llmcourse.model.gpt import GPT

        return GPT(get_preset("gpt2", **SHAPE))
    if which == "lfs":
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / ".peers"))
        from llms_from_scratch.ch04 import GPTModel

        return GPTModel(dict(vocab_size=SHAPE["vocab_size"], context_length=T, emb_dim=SHAPE["d_model"],
                             n_heads=SHAPE["n_head"], n_layers=SHAPE["n_layer"], drop_rate=0.0, qkv_bias=True))
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=6, n_head=6, n_embd=384, n_positions=256, vocab_size=50257,
                                      resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, attn_implementation="sdpa",
                                      bos_token_id=0, eos_token_id=0))


def loss_of(which: str, model, x, y):
    if which == "hf":
        logits = model(x).logits
    else:
        logits = model(x)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


def train(which: str, precision: str) -> dict:
    model = build(which).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 50257, (B, T), generator=g), torch.randint(0, 50257, (B, T), generator=g)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            start = time.perf_counter()
        with autocast:
            loss = loss_of(which, model, x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return {"tokens_per_s": STEPS * B * T / seconds, "params": sum(p.numel() for p in model.parameters())}


@torch.no_grad()
def generate(which: str, precision: str = "fp32") -> dict:
    """Greedy decoding from a 10-token prompt; bf16 casts the weights (and so the KV cache) to bfloat16."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    prompt, new = torch.randint(0, 50257, (1, 10), generator=torch.Generator().manual_seed(0)), 200
    extra = {}
    if which.startswith("ours"):
        from llmcourse.model.config import get_preset
        from llmcourse.model.generate import generate as ours_generate
        from llmcourse.model.gpt import GPT
        from llmcourse.model.weight_layout import tune_weight_layout, weight_layout

        torch.manual_seed(0)
        model = GPT(get_preset("gpt2")).eval().to(dtype)
        if which != "ours-row":
            start = time.perf_counter()
            extra = {"ms_per_token": tune_weight_layout(model), "tuning_s": time.perf_counter() - start}
        extra["layout"] = weight_layout(model)
        run = lambda: ours_generate(model, prompt, new, temperature=0, use_cache=which != "ours-nocache")
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        config = GPT2Config(attn_implementation="sdpa", bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(config).eval().to(dtype)
        run = lambda: model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                     use_cache=True, pad_token_id=0)
    start = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": (out.shape[1] - prompt.shape[1]) / seconds, **extra}


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    result = train(sys.argv[2], sys.argv[3]) if sys.argv[1] == "train" else generate(*sys.argv[2:4])
    print(json.dumps({**result, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
