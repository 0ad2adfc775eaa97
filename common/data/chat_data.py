"""SFT data: instruction rows -> chat messages -> (input_ids, labels) -> packed sequences.

Accepted row formats (one per row; a file may mix them):

- ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
  (also ``"conversations"``, and ShareGPT's ``{"from": "human"|"gpt", "value"}``);
- ``{"instruction", "input"?, "output", "system"?}`` (Alpaca);
- ``{"prompt", "completion"}`` (prompt a string or a messages list, as in TRL).

Rendering uses the tokenizer's own chat template (ChatML for Qwen). Labels are
-100 on system and user turns and on each assistant header
(``<|im_start|>assistant\\n``); the assistant's content and its end-of-turn token
(``<|im_end|>``) are trained. Spans are found by rendering growing prefixes of
the conversation (templates are prefix-stable), then mapped onto the full text's
tokens through the tokenizer's offsets, so BPE merges are those of the real text.

Usage::

    msgs = row_to_messages(row, where="train.jsonl:12")
    ids, labels = render_sft_example(msgs, tokenizer)
    examples = pack_sft_examples([render_sft_example(m, tok) for m in convs], seq_len=4096)

Not here: training (``objectives.py``/``trainer.py``), execution filtering (coder/).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from domainspec.common.data.packing import IGNORE_INDEX, PackedExample, pack_documents
from domainspec.common.data.sources import DataError, DataSourceConfig

ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system"}
FORMATS_HELP = ("expected one of: {'messages': [{'role', 'content'}, ...]}, "
                "{'instruction', 'input'?, 'output'}, {'prompt', 'completion'}")


def _present(row: dict, key: str) -> bool:
    return row.get(key) is not None  # datasets fills absent keys of mixed files with None


def _turns(raw: Any, where: str) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    msgs = []
    for j, m in enumerate(raw):
        if not isinstance(m, dict):
            raise DataError(f"{where}: message {j} is a {type(m).__name__}, expected an object with role/content")
        if m.get("role") is not None:
            role, content = m.get("role"), m.get("content")
        elif m.get("from") is not None:
            role, content = _SHAREGPT_ROLES.get(m["from"], m["from"]), m.get("value")
        else:
            raise DataError(f"{where}: message {j} has no 'role' (keys: {sorted(k for k in m if m[k] is not None)})")
        if role not in ROLES:
            raise DataError(f"{where}: message {j} has role {role!r}; expected one of {list(ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{where}: message {j} ({role}) content is {type(content).__name__}, expected text")
        msgs.append({"role": role, "content": content})
    return msgs


def row_to_messages(row: dict, where: str = "<row>") -> list[dict]:
    """Normalize one SFT row to a messages list; :class:`DataError` naming ``where`` if it fits no format."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: row is a {type(row).__name__}; {FORMATS_HELP}")
    if _present(row, "messages") or _present(row, "conversations"):
        msgs = _turns(row["messages"] if _present(row, "messages") else row["conversations"], where)
    elif _present(row, "instruction") and _present(row, "output"):
        user = row["instruction"] if not row.get("input") else f"{row['instruction']}\n\n{row['input']}"
        msgs = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
            {"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
        msgs = _turns(msgs, where)
    elif _present(row, "prompt") and _present(row, "completion"):
        prompt, completion = row["prompt"], row["completion"]
        head = _turns(prompt, where) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        tail = _turns(completion, where) if isinstance(completion, list) else [
            {"role": "assistant", "content": completion}]
        msgs = _turns(head + tail, where)
    else:
        keys = sorted(k for k, v in row.items() if v is not None)
        raise DataError(f"{where}: row fits no SFT format (keys: {keys}); {FORMATS_HELP}")
    if not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{where}: conversation has no assistant turn, nothing to train on")
    return msgs


def load_sft_conversations(src: DataSourceConfig) -> Iterator[list[dict]]:
    """Messages lists from a local JSONL/Parquet file or hub dataset (rows named by number in errors)."""
    from domainspec.common.data.sources import _load_raw  # the same loaders as CPT text, columns as stored

    ds = _load_raw(src)
    n = 0
    for i, row in enumerate(ds):
        yield row_to_messages(row, where=f"{src.path}: row {i + 1}")
        n += 1
        if src.limit is not None and n >= src.limit:
            return
    if n == 0:
        raise DataError(f"{src.path}: empty SFT dataset (no rows)")


# ------------------------------------------------------------------ rendering


def _render(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _end_of_turn(tokenizer) -> str | None:
    tok = "<|im_end|>"
    # one lookup, not get_vocab(): that copies the whole vocabulary (2 ms a call on the tiny model, called
    # once per rendered conversation)
    tid = tokenizer.convert_tokens_to_ids(tok)
    return tok if tid is not None and tid != tokenizer.unk_token_id else None


def assistant_spans(messages: Sequence[dict], tokenizer) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans ``[start, end)`` to train (assistant content + end-of-turn)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                        "SFT rendering needs one (ChatML for Qwen)")
    full = _render(tokenizer, messages)
    eot = _end_of_turn(tokenizer)
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head = _render(tokenizer, messages[:k], add_generation_prompt=True) if k else \
            _render(tokenizer, [], add_generation_prompt=True)
        upto = _render(tokenizer, messages[:k + 1])
        if not (full.startswith(upto) and upto.startswith(head)):
            raise DataError("chat template is not prefix-stable (rendering a longer conversation changed the "
                            "earlier text); cannot locate assistant turns for loss masking")
        start, end = len(head), len(upto)
        if eot is not None:  # train up to and including the end-of-turn token, not the separator after it
            j = full.rfind(eot, start, end)
            if j >= 0:
                end = j + len(eot)
        else:
            end = start + len(upto[start:].rstrip())
        spans.append((start, end))
    return full, spans


def render_sft_example(messages: Sequence[dict], tokenizer, max_length: int | None = None
                       ) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a conversation: labels -100 except on assistant content + end-of-turn.

    ``max_length``: truncate to this many tokens (the caller decides whether a sample
    without targets is still worth keeping).
    """
    text, spans = assistant_spans(messages, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    si = 0
    for t, (a, b) in enumerate(offsets):
        while si < len(spans) and a >= spans[si][1]:
            si += 1
        if si < len(spans) and spans[si][0] <= a < spans[si][1] and b > a:
            labels[t] = ids[t]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return list(ids), labels


def pack_sft_examples(examples: Iterable[tuple[Sequence[int], Sequence[int]]], seq_len: int,
                      pad_id: int = 0, pad_last: bool = False, truncate: bool = True) -> list[PackedExample]:
    """Pack rendered SFT samples (never split) with per-sample isolation; see ``packing.pack_documents``."""
    ids, labels = [], []
    for x, y in examples:
        ids.append(x)
        labels.append(y)
    return pack_documents(ids, seq_len, labels=labels, mode="bins", add_eos=False, pad_id=pad_id,
                          pad_last=pad_last, truncate=truncate)
