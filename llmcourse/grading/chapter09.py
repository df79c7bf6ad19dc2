"""Chapter 9's exercises: the response log-probability, the DPO loss, the implicit reward,
preference accuracy and the Bradley-Terry probability. The references are the package's own
functions (llmcourse.dpo)."""

from __future__ import annotations

import torch

from llmcourse.dpo.loss import answer_logprobs, dpo_loss
from llmcourse.dpo.reward import preference_probability
from llmcourse.finetune.collate import IGNORE
from llmcourse.grading.exercise import Exercise, close_to, register, tensor_close


def _logits_case(g: torch.Generator, B: int, T: int, V: int):
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, V, (B, T), generator=g)
    prompt = torch.randint(1, T, (B,), generator=g)  # each row's prompt length
    for row in range(B):
        targets[row, : int(prompt[row]) - 1] = IGNORE
        pad = int(torch.randint(0, 3, (1,), generator=g))  # 0 to 2 positions of padding
        if pad and int(prompt[row]) - 1 < T - pad:
            targets[row, T - pad:] = IGNORE  # right padding
    return logits, targets


register(Exercise("9.1", "The response log-probability", "response_logprob", points=2,
    reference=lambda logits, targets: answer_logprobs(logits, targets).double(),
    compare=tensor_close(atol=1e-4, rtol=1e-5),
    cases=lambda g: [("a batch of 3, 6 positions, 10 tokens", _logits_case(g, 3, 6, 10)),
                     ("one row", _logits_case(g, 1, 8, 5)),
                     ("a batch of 4, 12 positions, 50 tokens", _logits_case(g, 4, 12, 50))],
    hint="log_softmax the logits over the vocabulary, pick each position's target (gather), zero "
         "the positions whose target is -100, and sum each row: a (B,) tensor. Summed, not "
         "averaged, as the DPO paper and TRL do.",
))


def _logps(g: torch.Generator, B: int) -> tuple[torch.Tensor, ...]:
    return tuple(-torch.rand(B, generator=g, dtype=torch.float64) * 20 for _ in range(4))


register(Exercise("9.2", "The DPO loss", "dpo", points=3,
    reference=lambda pc, pr, rc, rr, beta: dpo_loss(pc, pr, rc, rr, beta).loss.item(),
    compare=close_to(rel=1e-6),
    cases=lambda g: [("a batch of 4, beta 0.1", (*_logps(g, 4), 0.1)),
                     ("a batch of 8, beta 0.5", (*_logps(g, 8), 0.5)),
                     ("policy equal to the reference: log 2", (*(2 * _logps(g, 3)[:2]), 0.1)),
                     ("one pair, beta 1", (*_logps(g, 1), 1.0))],
    hint="each answer's log-ratio is the policy's log-probability minus the reference's; the loss "
         "of a pair is -log sigmoid(beta * (chosen log-ratio - rejected log-ratio)) "
         "(F.logsigmoid is stable); return the mean over the pairs as a number.",
))


def _reward(policy, reference, beta):
    return dpo_loss(policy, policy, reference, reference, beta).chosen_rewards


register(Exercise("9.3", "The implicit reward", "implicit_reward", points=2,
    reference=_reward, compare=tensor_close(atol=1e-9, rtol=1e-9),
    cases=lambda g: [("5 answers, beta 0.1", (*_logps(g, 5)[:2], 0.1)),
                     ("3 answers, beta 2", (*_logps(g, 3)[:2], 2.0))],
    hint="beta times (the policy's log-probability minus the reference's), for each answer.",
))


def _accuracy(chosen, rejected):
    zeros = torch.zeros_like(chosen)
    return dpo_loss(chosen, rejected, zeros, zeros, beta=1.0).accuracy.item()


def _rewards(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = torch.randint(-3, 4, (n,), generator=g).double()
    return chosen, torch.randint(-3, 4, (n,), generator=g).double()  # ties happen


register(Exercise("9.4", "Preference accuracy", "preference_accuracy", points=2,
    reference=_accuracy, compare=close_to(rel=1e-9),
    cases=lambda g: [("10 pairs, some tied", _rewards(g, 10)),
                     ("a tie is not a win", (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]))),
                     ("50 pairs", _rewards(g, 50))],
    hint="the share of pairs whose chosen reward is strictly above the rejected one (a tie does "
         "not count as right, as in TRL), as a number between 0 and 1.",
))

register(Exercise("9.5", "The Bradley-Terry probability", "bt_probability", points=2,
    reference=preference_probability, compare=tensor_close(atol=1e-9, rtol=1e-9),
    cases=lambda g: [("6 pairs of rewards", (torch.randn(6, generator=g, dtype=torch.float64) * 3,
                                             torch.randn(6, generator=g, dtype=torch.float64) * 3)),
                     ("equal rewards: one half", (torch.ones(3, dtype=torch.float64),
                                                  torch.ones(3, dtype=torch.float64))),
                     ("far apart", (torch.tensor([30.0, -30.0], dtype=torch.float64),
                                    torch.tensor([0.0, 0.0], dtype=torch.float64)))],
    hint="sigmoid(chosen reward - rejected reward), for each pair: only the difference matters.",
))
