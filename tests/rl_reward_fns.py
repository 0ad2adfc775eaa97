"""User reward functions for tests/test_grpo.py (imported by path inside the sandbox)."""


def length(question, completions, answer):
    return [float(len(c)) for c in completions]


def hang(question, completions, answer):
    while True:
        pass


def too_few(question, completions, answer):
    return [1.0]


def not_numbers(question, completions, answer):
    return ["high"] * len(completions)


def boom(question, completions, answer):
    raise RuntimeError("reward server unreachable")
