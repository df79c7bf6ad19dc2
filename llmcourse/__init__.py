"""llmcourse: the package behind *Build a Large Language Model from Scratch*.

Each folder serves one part of the book, in its order: `foundations` (chapter 1), `data` and
`tokenizer` (Part I), `model` (Part II), `training` (Part III), `finetune` and `dpo` (Part IV),
`evaluation` (Part V); `viz` and `grading` serve every chapter. The top level holds only what the
whole package shares: the command line, devices, downloads, the notebooks' first cell and progress
bars. Importing the package stays cheap; import the module you need (e.g.
`from llmcourse.foundations.bigram import BigramModel`).
"""
__version__ = "0.1.0"
REPOSITORY = "https://github.com/llmcourse/llmcourse"
