"""Qwen2.5-Math system prompts for chain-of-thought (CoT) and tool-integrated reasoning (TIR).

Source: Qwen2.5-Math evaluation (``utils.py`` prompt templates "qwen25-math-cot"
and "tool-integrated"). They live in ``common`` because the tiny model's math tokenizer
is trained on chats that carry them (``common.models.tiny.default_corpus``); ``domainspec.math``
prompts with them (``domainspec.math.prompts``).
"""

COT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
TIR_SYSTEM_PROMPT = ("Please integrate natural language reasoning with programs to solve the problem above, "
                     "and put your final answer within \\boxed{}.")
