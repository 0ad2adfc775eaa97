"""Qwen2.5-Math system prompts for chain-of-thought (CoT) and tool-integrated reasoning (TIR).

Defined once in ``domainspec.common.data.builtin.math_prompts`` (the tiny model's tokenizer corpus uses them too).
"""
from domainspec.common.data.builtin.math_prompts import COT_SYSTEM_PROMPT, TIR_SYSTEM_PROMPT

__all__ = ["COT_SYSTEM_PROMPT", "TIR_SYSTEM_PROMPT"]
