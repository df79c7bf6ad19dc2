"""Run by tests/test_distributed.py under torchrun (one copy per process):

    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py MODE STRATEGY OUT

where MODE STRATEGY is one of

    resume {ddp,zero1,fsdp,deepspeed:zero3}
    fail ddp
    zero ddp
    shards deepspeed:zero1
    masked ddp

resume: an uninterrupted 6-step run (its state to OUT/whole.pt), then 3 steps, a stop, and a
        resume to 6 from a differently seeded model (its checkpoint in OUT/run).
fail: rank 1 raises at step 2.
zero: 3 AdamW steps under DDP with our ShardedOptimizer, torch's ZeroRedundancyOptimizer and plain
      AdamW; OUT/zero.json compares them.
shards: one step under DeepSpeed ZeRO stages 1, 2 and 3; OUT/shards.json holds what each process
        keeps.
masked: one step on fine-tuning rows whose answers differ in length (1 target or 20), on both
        processes and, on rank 0, in one process alone; OUT/masked.json compares the losses and
        gradients.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.training import Trainer, get_train_preset
from llmcourse.training.distributed import init_distributed, shutdown

mode, strategy, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
strategy, _, deepspeed_config = strategy.partition(":")  # deepspeed:zero3
info, device = init_distributed(strategy, deepspeed_config=deepspeed_config or None)
tokens = np.random.default_rng(0).integers(0, 256, 20_000).astype(np.uint16)
cfg = get_train_preset("smoke", precision="fp32", max_steps=6, eval_every=3, grad_accum=2)


def model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(get_preset("tiny", n_layer=2, vocab_size=256, context_length=32))


def trainer(seed: int, distributed=info, **kwargs) -> Trainer:
    return Trainer(model(seed), tokens, tokens, cfg, progress=False, device=device,
                   distributed=distributed, **kwargs)


try:
    if mode == "resume":
        whole = trainer(0)
        whole.fit()
        state = whole.state()  # every process gathers; rank 0 receives
        if info.is_main:
            torch.save({"model": state["model"], "history": whole.history}, out / "whole.pt")
        trainer(0, out_dir=out / "run").fit(stop_after=3)
        trainer(1, out_dir=out / "run", resume=True).fit()
    elif mode == "fail":
        failing = trainer(0)
        step = failing.train_step

        def train_step():
            if info.rank == 1 and failing.step == 2:
                raise RuntimeError("rank 1 failed on purpose at step 2")
            return step()

        failing.train_step = train_step
        failing.fit()
    elif mode == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer
        from torch.nn.parallel import DistributedDataParallel

        from llmcourse.data.batches import random_batch
        from llmcourse.training.optim import param_groups
        from llmcourse.training.zero import ShardedOptimizer

        def run(make):
            net = model(0)
            wrapped = DistributedDataParallel(net)
            optimizer = make(param_groups(net, 0.1))
            generator = torch.Generator().manual_seed(0)
            for _ in range(3):
                x, y = random_batch(tokens, 4, 32, generator, info.rows(4))
                wrapped(x, y)[1].backward()
                optimizer.step()
                optimizer.zero_grad()
            return net, optimizer

        options = dict(lr=1e-2, betas=(0.9, 0.95))
        ours, sharded = run(lambda groups: ShardedOptimizer(groups, torch.optim.AdamW, **options))
        theirs, _ = run(lambda groups: ZeroRedundancyOptimizer(groups, torch.optim.AdamW,
                                                               **options))
        plain, _ = run(lambda groups: torch.optim.AdamW(groups, **options))
        state_here = len(sharded.inner.state)
        counts = [None] * info.world_size
        torch.distributed.all_gather_object(counts, state_here)
        held = sum(t.nbytes for state in sharded.inner.state.values()
                   for k, t in state.items() if k != "step")
        bytes_held = [None] * info.world_size
        torch.distributed.all_gather_object(bytes_held, held)
        consolidated = sharded.consolidated_state_dict()
        if info.is_main:
            def same(a, b):
                weights = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
                return all(torch.equal(p, q) for p, q in weights)

            reference = torch.optim.AdamW(param_groups(plain, 0.1), **options)
            consolidated_groups = consolidated["param_groups"]
            reference_groups = reference.state_dict()["param_groups"]
            summary = {"sharded_equals_plain": same(ours, plain),
                       "sharded_equals_torch": same(ours, theirs),
                       "torch_equals_plain": same(theirs, plain),
                       "states_per_rank": counts, "parameters": len(list(ours.parameters())),
                       "bytes_per_rank": bytes_held,
                       "consolidated_keys": sorted(consolidated["state"]),
                       "consolidated_groups": [len(g["params"]) for g in consolidated_groups],
                       "reference_groups": [len(g["params"]) for g in reference_groups],
                       "consolidated_settings": sorted(consolidated_groups[0]),
                       "reference_settings": sorted(reference_groups[0])}
            json.dump(summary, open(out / "zero.json", "w"))
    elif mode == "masked":
        from llmcourse.finetune.collate import IGNORE, Example
        from llmcourse.finetune.sft import InstructionBatches

        rng = np.random.default_rng(1)
        rows = [Example(rng.integers(0, 256, 24).tolist(), [IGNORE] * (24 - n) +
                        rng.integers(0, 256, n).tolist()) for n in (1, 20, 1, 1, 20, 1, 1, 1)]
        data = InstructionBatches(rows, pad_id=0)
        masked = cfg.replace(batch_size=4, grad_accum=2, max_steps=1, warmup_steps=0)

        def step(distributed):
            run = Trainer(model(0), data, None, masked, progress=False, device=device,
                          distributed=distributed)
            loss = run.train_step()["loss"]
            moments = [run.optimizer.state[p]["exp_avg"] for p in run.model.parameters()]
            return loss, moments

        both = step(info)
        if info.is_main:
            alone = step(None)
            difference = max((a - b).abs().max().item()
                             for a, b in zip(both[1], alone[1], strict=True))
            json.dump({"losses": [both[0], alone[0]], "gradient_difference": difference / 0.1,
                       "largest_gradient": max(m.abs().max().item() for m in alone[1]) / 0.1},
                      open(out / "masked.json", "w"))
    elif mode == "shards":
        from dataclasses import replace

        held = {}
        for stage in (1, 2, 3):
            run = trainer(0, distributed=replace(info, deepspeed_config=f"zero{stage}"))
            run.train_step()
            engine = run.strategy.engine
            net = engine.module
            # stage 3 leaves each parameter's shard in ds_tensor and an empty placeholder in the
            # module
            weights = sum((p.ds_tensor if hasattr(p, "ds_tensor") else p).numel()
                          for p in net.parameters())
            moments = sum(t.numel() for state in engine.optimizer.optimizer.state.values()
                          for k, t in state.items() if k in ("exp_avg", "exp_avg_sq"))
            every = [None] * info.world_size
            mine = {"weights": 4 * weights, "optimizer": 4 * moments}
            torch.distributed.all_gather_object(every, mine)
            held[f"zero{stage}"] = every
        if info.is_main:
            json.dump(held, open(out / "shards.json", "w"))
finally:
    shutdown(info)
