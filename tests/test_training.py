"""The trainer against independent references (torch's own LR schedulers, one large batch) and
against the failures it exists to survive: interruption, resumption, divergence, a kill mid-write,
a damaged or unsafe file."""
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.training import (
    Trainer,
    TrainingDiverged,
    get_train_preset,
    load_checkpoint,
    lr_at,
    make_optimizer,
    save_checkpoint,
)
from llmcourse.training.memory import activation_bytes

TOKENS = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return GPT(get_preset("tiny", n_layer=1, vocab_size=256, context_length=32))


def smoke(**overrides):
    return get_train_preset("smoke", precision="fp32", **overrides)


def torch_lrs(cfg, schedulers):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    milestones = MILESTONES[cfg.schedule](cfg)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, schedulers(opt), milestones=milestones)
    out = []
    for _ in range(cfg.max_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


MILESTONES = {
    "cosine": lambda c: [c.warmup_steps],
    "wsd": lambda c: [c.warmup_steps, c.max_steps - int(c.decay_fraction * c.max_steps)],
}


def test_warmup_cosine_matches_torch_schedulers():
    cfg = smoke(max_steps=50, warmup_steps=5, lr=1e-2, min_lr_ratio=0.1, schedule="cosine")
    LR = torch.optim.lr_scheduler
    expected = torch_lrs(cfg, lambda opt: [
        LR.LinearLR(opt, start_factor=1 / 5, end_factor=1.0, total_iters=4),
        LR.CosineAnnealingLR(opt, T_max=45, eta_min=1e-3)])
    assert [lr_at(s, cfg) for s in range(50)] == pytest.approx(expected, rel=1e-9)


def test_warmup_stable_decay_matches_torch_schedulers():
    cfg = smoke(max_steps=50, warmup_steps=5, lr=1e-2, min_lr_ratio=0.1, schedule="wsd",
                decay_fraction=0.2)
    LR = torch.optim.lr_scheduler
    expected = torch_lrs(cfg, lambda opt: [
        LR.LinearLR(opt, start_factor=1 / 5, end_factor=1.0, total_iters=4),
        LR.ConstantLR(opt, factor=1.0, total_iters=0),
        LR.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=10)])
    assert [lr_at(s, cfg) for s in range(50)] == pytest.approx(expected, rel=1e-9)


def test_weight_decay_spares_norms_biases_and_embeddings():
    model = tiny_model()
    opt = make_optimizer(model, lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only decay can move a weight
    opt.step()
    for name, p in model.named_parameters():
        decays = (name.endswith(".weight")
                  and isinstance(model.get_submodule(name[:-7]), torch.nn.Linear)
                  and name != "lm_head.weight")
        expected = before[name] * (1 - 0.1 * 0.5) if decays else before[name]
        torch.testing.assert_close(p.detach(), expected, msg=name)


def test_gradient_accumulation_equals_the_large_batch():
    """8 sequences at once, 2 x 4 or 4 x 2: the same losses and, at every optimizer step, the same
    gradients."""
    runs = {}
    for batch, accum in ((8, 1), (4, 2), (2, 4)):
        cfg = smoke(batch_size=batch, grad_accum=accum, max_steps=3)
        trainer = Trainer(tiny_model(), TOKENS, None, cfg, progress=False)
        grads = []
        trainer.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs, grads=grads, model=trainer.model:
            grads.append([p.grad.clone() for p in model.parameters()]))
        trainer.fit()
        runs[accum] = ([m["loss"] for m in trainer.history], grads)
    for accum in (2, 4):
        assert runs[accum][0] == pytest.approx(runs[1][0], rel=1e-5)
        for step_a, step_b in zip(runs[accum][1], runs[1][1], strict=True):
            for a, b in zip(step_a, step_b, strict=True):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


class TwoBatches:
    """A fine-tuning data source that gives `first`, then `second`, then `first` again..."""

    def __init__(self, first, second):
        self.batches, self.calls = (first, second), 0

    def sample(self, batch_size, generator, rows=None):
        self.calls += 1
        return self.batches[(self.calls - 1) % 2]


def test_a_micro_batch_without_targets_adds_nothing_to_the_step():
    """A micro-batch whose targets are all IGNORE (answers cut away) weighs nothing: the step
    equals one over the other micro-batch alone. Before, its loss was 0 / 0 and the step NaN."""
    from llmcourse.finetune.collate import IGNORE, Example, pad_batch

    ids = TOKENS[:17].tolist()
    answered = pad_batch([Example(ids[:16], [IGNORE] * 8 + ids[9:17])] * 2, pad_id=0)
    unanswered = pad_batch([Example(ids[:16], [IGNORE] * 16)] * 2, pad_id=0)
    _, loss = tiny_model()(unanswered.ids, unanswered.targets)
    assert loss.item() == 0.0
    cfg = smoke(batch_size=2, max_steps=1, warmup_steps=0)
    alone = Trainer(tiny_model(), TwoBatches(answered, answered), None, cfg, progress=False)
    with_empty = Trainer(tiny_model(), TwoBatches(answered, unanswered), None,
                         cfg.replace(grad_accum=2), progress=False)
    assert with_empty.train_step()["loss"] == pytest.approx(alone.train_step()["loss"], rel=1e-6)
    for a, b in zip(with_empty.model.parameters(), alone.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # a whole step without targets: nothing learnt, and no divergence
    nothing = Trainer(tiny_model(), TwoBatches(unanswered, unanswered), None,
                      cfg.replace(grad_accum=2), progress=False).train_step()
    assert nothing["loss"] == 0.0 and nothing["grad_norm"] == 0.0


def test_resuming_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    cfg = smoke(max_steps=8, eval_every=3)
    whole = Trainer(tiny_model(), TOKENS, TOKENS, cfg, out_dir=tmp_path / "whole", progress=False)
    whole.fit()
    first = Trainer(tiny_model(), TOKENS, TOKENS, cfg, out_dir=tmp_path / "split", progress=False)
    first.fit(stop_after=3)
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    # a different initialisation: everything must come from the checkpoint
    second = Trainer(tiny_model(seed=99), TOKENS, TOKENS, cfg, out_dir=tmp_path / "split",
                     progress=False, resume=True)
    second.fit()
    strip = lambda h: [{k: v for k, v in m.items() if k != "tokens_per_s"} for m in h]  # noqa: E731
    assert strip(second.history) == strip(whole.history)
    resumed, uninterrupted = second.model.state_dict(), whole.model.state_dict()
    for a, b in zip(resumed.values(), uninterrupted.values(), strict=True):
        assert torch.equal(a, b)


def test_resuming_with_another_config_names_the_fields(tmp_path):
    Trainer(tiny_model(), TOKENS, None, smoke(max_steps=4), out_dir=tmp_path,
            progress=False).fit(stop_after=2)
    with pytest.raises(CheckpointError, match=r"lr: 0.003 -> 0.001") as err:
        Trainer(tiny_model(), TOKENS, None, smoke(max_steps=4, lr=1e-3), out_dir=tmp_path,
                resume=True)
    assert "max_steps" not in str(err.value)
    with pytest.raises(FileExistsError, match="resume=True"):
        Trainer(tiny_model(), TOKENS, None, smoke(max_steps=4), out_dir=tmp_path)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()
    trainer = Trainer(model, TOKENS, None, smoke(max_steps=10, checkpoint_every=1),
                      out_dir=tmp_path, progress=False)
    trainer.fit(stop_after=3)
    good = load_checkpoint(tmp_path / "checkpoint.pt")
    model.blocks[0].mlp.register_forward_hook(lambda m, i, out: out * float("nan"))
    diverged = "the loss became nan at step 3.*checkpoint.pt, is kept"
    with pytest.raises(TrainingDiverged, match=diverged):
        trainer.fit()
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["step"] == 3
    weights = zip(kept["model"].values(), good["model"].values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)
    # the broken step was never applied
    assert all(torch.isfinite(p).all() for p in model.parameters())


TRAIN_SCRIPT = """
import sys, numpy as np, torch
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.training import Trainer, get_train_preset
torch.manual_seed(0)
model = GPT(get_preset("tiny", n_layer=1, vocab_size=256, context_length=32))
tokens = np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint16)
cfg = get_train_preset("smoke", precision="fp32", max_steps=100000)
trainer = Trainer(model, tokens, None, cfg, out_dir=sys.argv[1], progress=False,
                  callbacks=[lambda m: print("step", m["step"], flush=True)])
trainer.fit()
"""


def test_ctrl_c_saves_a_checkpoint_before_exiting(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("step 5"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt: interrupted at step" in err
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] >= 5


WRITE_SCRIPT = """
import sys, torch
from llmcourse.training import save_checkpoint
big = torch.zeros(40_000_000)  # 160 MB: long enough to be killed in the middle of a write
save_checkpoint(sys.argv[1], {"version": 0, "big": big})
print("saved", flush=True)
for version in range(1, 1000):
    big.fill_(version)
    save_checkpoint(sys.argv[1], {"version": version, "big": big})
"""


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-c", WRITE_SCRIPT, str(path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    deadline = time.time() + 60
    while not list(tmp_path.glob(".checkpoint.pt.*.tmp")) and time.time() < deadline:
        time.sleep(0.01)  # wait until a temporary file is being written
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".checkpoint.pt.*.tmp")), "the kill did not land mid-write"
    state = load_checkpoint(path)
    assert torch.all(state["big"] == state["version"])  # a whole checkpoint, of one version


def test_damaged_and_unsafe_files_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ok.pt", {"step": 1})
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    unsafe = {"format": "llmcourse-train-1", "payload": np.dtype("float32")}
    torch.save(unsafe, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "unsafe.pt")  # weights_only refuses arbitrary objects
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bits_per_byte_converts_nats_per_token():
    trainer = Trainer(tiny_model(), TOKENS, TOKENS, smoke(), bytes_per_token=2.5, progress=False)
    result = trainer.evaluate()
    assert result["val_bpb"] == pytest.approx(result["val_loss"] / math.log(2) / 2.5)
    # an untrained model: about uniform
    assert result["val_loss"] == pytest.approx(math.log(256), rel=0.05)


def _saved_bytes_and_grads(checkpointing: bool) -> tuple[int, dict[str, torch.Tensor]]:
    """Bytes autograd keeps for backward (see conftest.saved_for_backward), and the gradients after
    backward."""
    torch.manual_seed(0)
    model = GPT(get_preset("tiny", n_layer=4, vocab_size=256, context_length=64))
    model.checkpoint_blocks = checkpointing
    x = torch.randint(0, 256, (4, 64), generator=torch.Generator().manual_seed(1))
    saved = activation_bytes(model, x)
    model(x, x)[1].backward()
    return saved, {n: p.grad for n, p in model.named_parameters()}


def test_activation_checkpointing_keeps_less_for_backward_and_changes_no_gradient():
    full, grads = _saved_bytes_and_grads(False)
    checkpointed, same = _saved_bytes_and_grads(True)
    # only the blocks' inputs (and the head's) are kept; the blocks run again
    assert checkpointed < full / 3
    assert all(torch.equal(grads[n], same[n]) for n in grads)


def test_the_trainer_switches_activation_checkpointing_on():
    model = GPT(get_preset("tiny", n_layer=1, vocab_size=64, context_length=16))
    tokens = np.arange(200, dtype=np.uint16) % 64
    Trainer(model, tokens, None, smoke(activation_checkpointing=True), progress=False)
    assert model.checkpoint_blocks
    with pytest.raises(ValueError, match="blocks to checkpoint"):
        Trainer(torch.nn.Linear(2, 2), np.arange(200, dtype=np.uint16), None,
                smoke(activation_checkpointing=True), progress=False)
