"""A reward model, the first half of RLHF: a scalar score for an answer, trained on the same
preference pairs as DPO with the Bradley-Terry model,

    P(chosen preferred to rejected) = sigmoid(r(x, y_chosen) - r(x, y_rejected)),

by minimising -log of that probability. The model is the SFT model with its LM head replaced by
one linear layer that reads the final hidden state of the answer's last token. RLHF then trains
the policy with PPO to maximise this reward (minus a KL penalty to the reference); DPO skips both
the reward model and the RL loop, because the policy's own log-ratio is an implicit reward.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.dpo.loss import prefers_chosen
from llmcourse.dpo.training import Pair, PairObjective, pair_batch
from llmcourse.finetune.collate import IGNORE


def preference_probability(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: the probability that the answer scored `chosen` is preferred to the one
    scored `rejected`, sigmoid(chosen - rejected). Only the difference of rewards matters.

    >>> preference_probability(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])).tolist()
    [0.8807970285415649, 0.5]
    """
    return torch.sigmoid(chosen - rejected)


class RewardModel(PairObjective):
    """A copy of a language model's body with a scalar head instead of its LM head."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.body = copy.deepcopy(model)
        d = self.body.tok_emb.weight.shape[1]
        self.body.lm_head = nn.Identity()  # the body now returns its final, normalised states
        self.head = nn.Linear(d, 1)
        nn.init.zeros_(self.head.weight)  # every answer starts at reward 0: P = 1/2
        nn.init.zeros_(self.head.bias)

    def score(self, ids: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
              positions: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) the reward of each row's answer, read at its last token."""
        states = self.body(ids, mask=mask, positions=positions)  # (B, T, d)
        T = targets.shape[1]
        last = torch.where(targets != IGNORE, torch.arange(T, device=ids.device), -1).amax(-1)
        return self.head(states[torch.arange(len(ids)), last]).squeeze(-1)  # (B,)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, reference: torch.Tensor | None = None):
        """The Bradley-Terry loss on (chosen rows, then rejected rows), as the trainer steps it."""
        chosen, rejected = self.score(ids, targets, mask, positions).chunk(2)
        loss = -F.logsigmoid(chosen - rejected).mean()  # -log preference_probability, stably
        self.measure(accuracy=prefers_chosen(chosen, rejected).float().mean(),
                     margin=(chosen - rejected).detach().mean())
        return None, loss


@torch.no_grad()
def pair_accuracy(reward_model: RewardModel, pairs: Sequence[Pair], pad_id: int,
                  batch_size: int = 64) -> float:
    """The share of pairs whose chosen answer the reward model scores above the rejected one."""
    was_training = reward_model.training
    reward_model.eval()
    device = next(reward_model.parameters()).device
    right = 0
    for start in range(0, len(pairs), batch_size):
        b = pair_batch(pairs[start:start + batch_size], pad_id)
        scores = reward_model.score(b.ids.to(device), b.targets.to(device), b.mask.to(device),
                                    b.positions.to(device))
        chosen, rejected = scores.chunk(2)
        right += int(prefers_chosen(chosen, rejected).sum())
    reward_model.train(was_training)
    return right / len(pairs)
