"""Aligning a fine-tuned model with preferences: pairs of a chosen and a rejected answer, the DPO
loss on summed response log-probabilities, and training it with the Part III trainer."""
