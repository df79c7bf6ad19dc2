"""Graded exercises: checks registered by exercise id, instant feedback in notebooks (`check`), the
grader command (`python -m llmcourse grade`), and the generator of exercises/ from solutions/.

Grading imports the core package as its reference; the core never imports grading."""
from llmcourse.grading.exercise import Exercise, chapter_exercises, get_exercise
from llmcourse.grading.feedback import CheckResult, check

__all__ = ["CheckResult", "Exercise", "chapter_exercises", "check", "get_exercise"]
