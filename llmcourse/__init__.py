"""llmcourse: the package behind *Build a Large Language Model from Scratch*.

The modules follow the book's pipeline: corpus -> tokenizer -> token ids -> model -> training ->
generation. Importing the package stays cheap; import the module you need (e.g.
`from llmcourse.bigram import BigramModel`).
"""
__version__ = "0.1.0"
REPOSITORY = "https://github.com/llmcourse/llmcourse"
