"""DPO with the Part III trainer: preference pairs as batches, the reference's log-probabilities
computed once, and the policy's objective as a module the trainer steps.

The reference model never changes, so its log-probability of every answer is computed once, before
training, and travels with the pairs (`PreferenceBatches`): training then runs one model, not two.
`DPOObjective` wraps the policy so that its forward pass returns the DPO loss, and reports the
rewards, margins, accuracy and log-probabilities it saw to the trainer (`step_metrics`), which
logs them beside the loss: the same progress bar, curves, checkpoints and exact resume as SFT.

    examples = encode_pairs(pairs, tokenizer, 64)
    data = PreferenceBatches(examples, pad_id=0, reference=reference_logprobs(sft, examples, 0))
    Trainer(DPOObjective(policy, beta=0.1), data, None, cfg).fit()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from llmcourse.dpo.loss import dpo_loss, prefers_chosen, sequence_logprobs
from llmcourse.dpo.preferences import PreferencePair
from llmcourse.finetune.collate import IGNORE, Batch, Example, TooLong, encode_example, pad_batch
from llmcourse.finetune.records import Conversation, Message
from llmcourse.finetune.template import render
from llmcourse.tokenizer import Tokenizer
from llmcourse.training.precision import autocast

Pair = tuple[Example, Example]  # (chosen, rejected), each with its loss on the answer only


def encode_pairs(pairs: Sequence[PreferencePair], tokenizer: Tokenizer, context_length: int,
                 too_long: TooLong = "error") -> list[Pair]:
    """Both answers of every pair under the chat template, with the same prompt."""
    out = []
    for i, pair in enumerate(pairs):
        encoded = []
        for answer in (pair.chosen, pair.rejected):
            conversation = Conversation((*pair.prompt, Message("assistant", answer)), pair.task)
            encoded.append(encode_example(*render(conversation, tokenizer), context_length,
                                          too_long, index=i))
        out.append((encoded[0], encoded[1]))
    return out


def pair_batch(pairs: Sequence[Pair], pad_id: int) -> Batch:
    """The chosen answers' rows, then the rejected answers' rows, padded together: (2B, T)."""
    return pad_batch([c for c, _ in pairs] + [r for _, r in pairs], pad_id)


@torch.no_grad()
def reference_logprobs(model: nn.Module, pairs: Sequence[Pair], pad_id: int, batch_size: int = 64,
                       average: bool = False, precision: str = "fp32") -> torch.Tensor:
    """(N, 2): the model's log-probability of each pair's chosen and rejected answer, computed as
    the policy's will be in training: without dropout (DPOObjective switches it off) and in the
    trainer's `precision` (resolved: fp32, bf16 or fp16). So at the first step the policy, still
    equal to the reference, gets a loss of exactly log 2."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        batch = pair_batch(pairs[start:start + batch_size], pad_id)
        with autocast(precision, device):
            logps = sequence_logprobs(model, batch.ids.to(device), batch.targets.to(device),
                                      batch.mask.to(device), batch.positions.to(device), average)
        out.append(torch.stack(logps.float().cpu().chunk(2), dim=1))  # (b, 2)
    model.train(was_training)
    return torch.cat(out)


class PreferenceBatches:
    """Pairs to draw training batches from (uniformly, with replacement, as InstructionBatches
    draws examples), with their reference log-probabilities (for DPO; a reward model needs none)."""

    def __init__(self, pairs: Sequence[Pair], pad_id: int,
                 reference: torch.Tensor | None = None) -> None:
        if not pairs:
            raise ValueError("no preference pairs to train on")
        if reference is not None and tuple(reference.shape) != (len(pairs), 2):
            raise ValueError(f"reference must be ({len(pairs)}, 2) log-probabilities, one per "
                             f"answer (reference_logprobs), got {tuple(reference.shape)}")
        self.pairs, self.pad_id = list(pairs), pad_id
        self.reference = None if reference is None else reference.float()

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               rows: slice | None = None) -> Batch:
        picked = torch.randint(0, len(self.pairs), (batch_size,), generator=generator)
        if rows is not None:
            picked = picked[rows]
        batch = pair_batch([self.pairs[i] for i in picked.tolist()], self.pad_id)
        if self.reference is None:  # a reward model needs none
            return batch
        reference = self.reference[picked]  # (B, 2)
        return Batch(batch.ids, batch.targets, batch.mask, batch.positions,
                     torch.cat([reference[:, 0], reference[:, 1]]))  # chosen rows, then rejected


class PairObjective(nn.Module):
    """A module whose forward pass returns a loss over preference pairs (DPO's, the reward
    model's), with the trainer's two seams: the means of what its forward passes measured
    (`step_metrics`, reported beside the loss) and what its loss is a mean over (`loss_count`)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, list[float]] = defaultdict(list)

    def measure(self, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            self._seen[name].append(float(value))

    def step_metrics(self) -> dict[str, float]:
        """The means of what the forward passes measured since the last call (then forgotten)."""
        seen, self._seen = self._seen, defaultdict(list)
        return {name: sum(values) / len(values) for name, values in seen.items()}

    def loss_count(self, targets: torch.Tensor) -> torch.Tensor:
        """The pairs (each holds a chosen and a rejected row): the trainer weighs micro-batches
        by it."""
        return torch.tensor(len(targets) // 2, device=targets.device)


class DPOObjective(PairObjective):
    """The policy, with DPO as what its forward pass computes: the trainer steps this module.

    average: mean instead of summed answer log-probabilities (the pitfall the chapter measures);
    sft_weight: adds that much of the chosen answers' next-token loss, a remedy for collapse."""

    def __init__(self, policy: nn.Module, beta: float = 0.1, average: bool = False,
                 sft_weight: float = 0.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.policy, self.beta, self.average, self.sft_weight = policy, beta, average, sft_weight
        # no dropout, as TRL's DPO (disable_dropout): the reference's log-probabilities were
        # computed without it, and the implicit reward compares the two
        for module in policy.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            elif isinstance(getattr(module, "dropout", None), float):  # attention's, a rate
                module.dropout = 0.0

    def forward(self, ids: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, reference: torch.Tensor | None = None):
        if reference is None:
            raise ValueError("DPO needs the reference log-probabilities (PreferenceBatches)")
        logps = sequence_logprobs(self.policy, ids, targets, mask, positions, self.average)
        chosen, rejected = logps.chunk(2)
        ref_chosen, ref_rejected = reference.chunk(2)
        out = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta)
        loss = out.loss
        if self.sft_weight:  # the chosen answers' mean next-token loss
            counts = (targets[: len(chosen)] != IGNORE).sum(-1)
            totals = chosen * counts if self.average else chosen
            loss = loss - self.sft_weight * totals.sum() / counts.sum()
        self.measure(reward_chosen=out.chosen_rewards.mean(),
                     reward_rejected=out.rejected_rewards.mean(), margin=out.margins.mean(),
                     accuracy=out.accuracy, logp_chosen=chosen.detach().mean(),
                     logp_rejected=rejected.detach().mean())
        return None, loss


@torch.no_grad()
def ranking_accuracy(model: nn.Module, pairs: Sequence[Pair], pad_id: int) -> float:
    """The share of pairs whose chosen answer the model finds more likely than the rejected one
    (summed log-probabilities): a measure of one model alone, so SFT and DPO models compare."""
    logps = reference_logprobs(model, pairs, pad_id)
    return prefers_chosen(logps[:, 0], logps[:, 1]).float().mean().item()
