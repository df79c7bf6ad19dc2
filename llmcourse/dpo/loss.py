"""The DPO loss (Rafailov et al., 2023) on per-sequence log-probabilities.

For a prompt x with a chosen answer y_w and a rejected one y_l, the policy pi is trained against a
frozen reference pi_ref (the SFT model it starts from):

    loss = -log sigmoid(beta * [(log pi(y_w|x) - log pi_ref(y_w|x))
                                - (log pi(y_l|x) - log pi_ref(y_l|x))])

beta * (log pi - log pi_ref) is the answer's *implicit reward*: DPO raises the chosen answer's
reward above the rejected one's, and beta says how far from the reference it may go for that.

**Summed, not averaged.** log pi(y|x) is the sum of the answer's token log-probabilities, as in
the paper and TRL; the mean per token (as some tutorials compute it) is another objective, which
no longer favours short or long answers as the sum does, and is known to collapse (TRL issue 789).
`sequence_logprobs(..., average=True)` computes it, for the chapter's side-by-side experiment.

`dpo_loss` matches TRL's `DPOTrainer` with `loss_type="sigmoid"` (trl 1.16): the same loss, the
same rewards (beta times the log-ratio), margins and accuracies (chosen reward strictly above the
rejected one), tested on the same model and batch.

>>> import torch
>>> out = dpo_loss(torch.tensor([-2.0]), torch.tensor([-3.0]), torch.tensor([-2.5]),
...                torch.tensor([-2.5]), beta=0.1)
>>> round(out.loss.item(), 4), out.margins.tolist(), out.accuracy.item()
(0.6444, [0.10000000149011612], 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmcourse.finetune.collate import IGNORE


def answer_logprobs(logits: torch.Tensor, targets: torch.Tensor,
                    average: bool = False) -> torch.Tensor:
    """(B,) from (B, T, V) logits and (B, T) targets: the sum over each row's target tokens
    (IGNORE marks the prompt and the padding, which do not count) of the log-probability the logits
    give them; with average=True, the mean per answer token instead.

    >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens: log(1/4) = -1.386 each
    >>> answer_logprobs(logits, torch.tensor([[IGNORE, 2, 3]])).item()  # two answer tokens
    -2.7725887298583984
    """
    logits = logits.float()
    keep = targets != IGNORE  # (B, T)
    picked = logits.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # (B, T)
    token_logps = (picked - logits.logsumexp(-1)) * keep  # log softmax at the target only
    total = token_logps.sum(-1)
    return total / keep.sum(-1).clamp(min=1) if average else total


def sequence_logprobs(model: torch.nn.Module, ids: torch.Tensor, targets: torch.Tensor,
                      mask: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                      average: bool = False) -> torch.Tensor:
    """(B,) the model's log-probability of each row's answer (answer_logprobs of its logits)."""
    return answer_logprobs(model(ids, mask=mask, positions=positions), targets, average)


def prefers_chosen(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per pair, whether the chosen answer's score (a reward, a log-probability) is strictly above
    the rejected one's. A tie is not a win, so a model that cannot tell the answers apart ranks no
    pair right; the mean of this is a pair accuracy, wherever the course reports one.

    >>> prefers_chosen(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])).tolist()
    [True, False, False]
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected scores must have one shape, got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    return chosen > rejected


@dataclass(frozen=True)
class DPOOutput:
    loss: torch.Tensor  # the mean over pairs, what backward() is called on
    losses: torch.Tensor  # (B,) per pair
    chosen_rewards: torch.Tensor  # (B,) beta * (log pi - log pi_ref) of the chosen answers
    rejected_rewards: torch.Tensor  # (B,)
    margins: torch.Tensor  # (B,) chosen reward - rejected reward
    accuracy: torch.Tensor  # the share of pairs whose chosen reward is above the rejected's


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> DPOOutput:
    """The sigmoid DPO loss and its statistics, from (B,) per-sequence log-probabilities."""
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    shapes = {t.shape for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"expected four (B,) tensors of log-probabilities, got shapes "
                         f"{[tuple(s) for s in shapes]}")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    chosen_rewards = beta * chosen_ratio.detach()
    rejected_rewards = beta * rejected_ratio.detach()
    return DPOOutput(losses.mean(), losses, chosen_rewards, rejected_rewards,
                     chosen_rewards - rejected_rewards,
                     prefers_chosen(chosen_rewards, rejected_rewards).float().mean())
