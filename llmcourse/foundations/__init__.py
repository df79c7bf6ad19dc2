"""Chapter 1, what a language model is: a character-level vocabulary, the count-based bigram model,
and the language-modelling loss (mean negative log-likelihood, perplexity, bits per byte)."""
