"""Part IV benchmarks, one measurement per process (prints one JSON line last):

    python benchmarks/finetune_bench.py sft {ours,lfs} SHAPE      # one SFT step: ms and peak memory
    python benchmarks/finetune_bench.py lora {full,lora} SHAPE    # full fine-tuning against LoRA

SHAPE is `course` (the course model grown for the chat tokens: 2,052 tokens, 64 of context) or
`gpt2` (GPT-2 124M's shape). Both sides train on the same examples: the chapter's tasks under the
chat template, batches of 8 as llms-from-scratch's chapter 7 uses.

`sft`: ours is the course's `Trainer` drawing padded batches from `InstructionBatches` (loss on
the answers only), on llmcourse's GPT. lfs is llms-from-scratch's chapter 7 recipe: its
`custom_collate_fn` (pads with an end-of-text id, masks all but the first pad), its ch04
`GPTModel` at the same shape, its `calc_loss_batch`, and AdamW(lr 5e-5, weight decay 0.1) as in
its `train_model_simple`, stepped the way that loop does.

`lora`: the course's `Trainer` on the same batches, fully fine-tuned, or with LoRA (rank 8 on every
block matrix, the chat tokens' rows trainable; `llmcourse.finetune.recipe`).

Peak memory is the process's peak resident set: the model, its training state, the batches and
the interpreter, on the CPU.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / ".peers"))  # llms-from-scratch, installed by install_peers.sh

BATCH = 8
STEPS = {"course": 60, "gpt2": 12}
WARMUP = 3


def examples(context: int):
    """The chapter's training examples under the chat template, and the grown tokenizer."""
    from llmcourse.training.course_model import course_model
    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune import recipe
    from llmcourse.finetune.sft import encode_conversations

    course = course_model(progress=False)
    tasks = recipe.sft_tasks(load_corpus("shakespeare"), n_per_family=200, test_per_family=10)
    tokenizer, model = recipe.chat_model(course.tokenizer, course.model)
    return encode_conversations(tasks.train, tokenizer, context), tokenizer, model


def our_model(shape: str, course_gpt):
    from llmcourse.model.config import get_preset
    from llmcourse.model.gpt import GPT

    if shape == "course":
        return course_gpt
    torch.manual_seed(0)
    return GPT(get_preset("gpt2", vocab_size=course_gpt.cfg.vocab_size, context_length=64))


def sft(side: str, shape: str) -> dict:
    from llmcourse.finetune.sft import InstructionBatches

    data, tokenizer, grown = examples(64)
    steps = STEPS[shape] + WARMUP
    model = our_model(shape, grown)
    params = sum(p.numel() for p in model.parameters())
    if side == "ours":
        from llmcourse.training import Trainer, get_train_preset

        cfg = get_train_preset("course", batch_size=BATCH, max_steps=steps, lr=5e-5,
                               warmup_steps=0, eval_every=0, precision="fp32")
        trainer = Trainer(model, InstructionBatches(data, pad_id=0), None, cfg, progress=False)
        trainer.fit(stop_after=WARMUP)
        start = time.perf_counter()
        trainer.fit()
    else:
        from llms_from_scratch.ch04 import GPTModel
        from llms_from_scratch.ch05 import calc_loss_batch
        from llms_from_scratch.ch07 import custom_collate_fn

        cfg = model.cfg
        torch.manual_seed(0)
        model = GPTModel({"vocab_size": cfg.vocab_size, "context_length": cfg.context_length,
                          "emb_dim": cfg.d_model, "n_heads": cfg.n_head, "n_layers": cfg.n_layer,
                          "drop_rate": 0.0, "qkv_bias": True})
        params = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
        end = tokenizer.special_tokens["<|end|>"]
        generator = torch.Generator().manual_seed(0)
        # their dataset holds whole token lists (prompt and response); collate adds the pad
        items = [e.inputs + [e.targets[-1]] for e in data]

        def step():
            picked = torch.randint(0, len(items), (BATCH,), generator=generator).tolist()
            x, y = custom_collate_fn([items[i] for i in picked], pad_token_id=end,
                                     allowed_max_length=cfg.context_length)
            optimizer.zero_grad()
            loss = calc_loss_batch(x, y, model, "cpu")
            loss.backward()
            optimizer.step()

        for _ in range(WARMUP):
            step()
        start = time.perf_counter()
        for _ in range(STEPS[shape]):
            step()
    seconds = time.perf_counter() - start
    return {"step_ms": 1000 * seconds / STEPS[shape], "params": params}


def lora(side: str, shape: str) -> dict:
    from llmcourse.finetune import recipe
    from llmcourse.finetune.sft import InstructionBatches
    from llmcourse.training import Trainer

    data, tokenizer, grown = examples(64)
    model = our_model(shape, grown)
    if side == "lora":
        recipe.with_lora(tokenizer, model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = STEPS[shape] + WARMUP
    cfg = recipe.sft_config(lora=side == "lora", batch_size=BATCH, max_steps=steps,
                            warmup_steps=0, precision="fp32")
    trainer = Trainer(model, InstructionBatches(data, pad_id=0), None, cfg, progress=False)
    trainer.fit(stop_after=WARMUP)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    return {"step_ms": 1000 * seconds / STEPS[shape], "trainable": trainable,
            "params": sum(p.numel() for p in model.parameters())}


if __name__ == "__main__":
    what, side, shape = sys.argv[1:4]
    result = {"sft": sft, "lora": lora}[what](side, shape)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**result, "peak_rss_mb": peak}))
