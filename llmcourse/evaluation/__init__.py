"""Evaluating language models the way the field does: log-likelihoods of continuations (bits per
byte, multiple choice), generation with a stop rule (exact match), preference accuracy, their
confidence intervals, the lm-eval adapter, and the course's report card.

Almost every number on a leaderboard is one of two things: the log-probability a model gives to a
text after a context (`likelihood`), or a text it generates (`generation`). The rest is
bookkeeping: which texts, which prompt, how the scores are normalised, and how many items there
are (`stats`).
"""
