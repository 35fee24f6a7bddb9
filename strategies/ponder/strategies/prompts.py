"""The prompts of the built-in strategies, triggers verbatim from their papers.

Chat engines get each prompt as one user message (after the request's own
system messages); the trigger ends that message, as zero-shot CoT prompts
are sent to instruction-tuned models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

# Kojima et al. 2022, zero-shot CoT: the reasoning trigger and, per answer
# format, the answer-extraction trigger.
COT_TRIGGER = "Let's think step by step."
AnswerFormat = Literal["numeric", "choice", "yes_no", "free"]
ANSWER_TRIGGERS: dict[str, str] = {
    "numeric": "Therefore, the answer (arabic numerals) is",
    "choice": "Therefore, among A through E, the answer is",
    "yes_no": "Therefore, the answer (Yes or No) is",
    "free": "Therefore, the answer is",
}

# Wang et al. 2023, Plan-and-Solve, as in the authors' code.
PS_TRIGGER = (
    "Let's first understand the problem and devise a plan to solve the problem. "
    "Then, let's carry out the plan to solve the problem step by step."
)
PS_PLUS_TRIGGER = (
    "Let's first understand the problem, extract relevant variables and their "
    "corresponding numerals, and devise a plan. Then, let's carry out the plan, "
    "calculate intermediate variables (pay attention to correct numeral calculation "
    "and commonsense), solve the problem step by step, and show the answer."
)

# Dua et al. 2022, Successive Prompting: the decomposer's stop signal.
NO_MORE_QUESTIONS = "There are no more questions left to ask."

ANSWER_LINE = 'End with the line "The answer is <answer>."'


def qa(question: str, trigger: str) -> str:
    """Kojima's format: ``Q: <question>`` then ``A: <trigger>``."""
    return f"Q: {question}\nA: {trigger}"


def extraction(question: str, trigger: str, rationale: str, answer_trigger: str) -> str:
    """The second stage: the first stage's prompt and rationale, then the answer trigger."""
    return f"{qa(question, trigger)} {rationale.strip()}\n{answer_trigger}"


def demo(question: str, rationale: str, answer: str) -> str:
    """One few-shot demonstration, in Auto-CoT's format."""
    return f"Q: {question}\nA: {COT_TRIGGER} {rationale.strip()} The answer is {answer}."


def with_demos(demos: Sequence[str], prompt: str) -> str:
    return "\n\n".join([*demos, prompt])


# Successive Prompting.
def decomposition(
    question: str, pairs: Sequence[tuple[str, str]], demos: Sequence[str] = ()
) -> str:
    instruction = (
        "Break the complex question into simple questions and ask them one at a time. "
        f'Write only the next simple question, as "Q{len(pairs) + 1}: <question>". '
        "When the questions asked so far are enough to answer the complex question, "
        f'write only "{NO_MORE_QUESTIONS}"'
    )
    context = "\n".join([f"Complex question: {question}", *_pairs(pairs)])
    return "\n\n".join([instruction, *demos, context])


def sub_answer(question: str, pairs: Sequence[tuple[str, str]], sub_question: str) -> str:
    step = len(pairs) + 1
    context = "\n".join([f"Complex question: {question}", *_pairs(pairs)])
    return (
        f"{context}\n\nAnswer the next simple question briefly.\nQ{step}: {sub_question}\nA{step}:"
    )


def final_from_pairs(question: str, pairs: Sequence[tuple[str, str]]) -> str:
    context = "\n".join([f"Complex question: {question}", *_pairs(pairs)])
    return f"{context}\n\nUsing the answers above, answer the complex question. {ANSWER_LINE}"


def _pairs(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [line for i, (q, a) in enumerate(pairs, 1) for line in (f"Q{i}: {q}", f"A{i}: {a}")]


# Sequential refinement and PDR.
def solve(question: str) -> str:
    return f"Solve the following problem. {COT_TRIGGER} {ANSWER_LINE}\n\n{question}"


def error_analysis(question: str, solution: str) -> str:
    return (
        f"Problem:\n{question}\n\nSolution:\n{solution.strip()}\n\n"
        "Find the errors in this solution. List each error and how to fix it. "
        "Do not write a new solution."
    )


def refinement(question: str, previous: str, analysis: str | None = None) -> str:
    feedback = f"\n\nErrors found in it:\n{analysis.strip()}" if analysis else ""
    return (
        f"Problem:\n{question}\n\nPrevious solution:\n{previous.strip()}{feedback}\n\n"
        "Write an improved, complete solution: check every step of the previous one, "
        f"fix what is wrong, keep what is right. {ANSWER_LINE}"
    )


def from_workspace(question: str, workspace: str) -> str:
    if not workspace:
        return solve(question)
    return (
        f"Problem:\n{question}\n\nNotes from earlier attempts (they may contain errors):\n"
        f"{workspace.strip()}\n\nUsing what is useful in the notes, write a complete "
        f"solution. {COT_TRIGGER} {ANSWER_LINE}"
    )
