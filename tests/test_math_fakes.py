"""Scriptable stand-ins for the generation backend, shared by the math tests (no tests here).

``ScriptedBackend`` plays back hand-written response streams: each question maps to a list of
chunks; the k-th generation for a sequence returns chunk k, where k is the number of tool
outputs already appended to that sequence. Like a real backend it cuts each chunk at the first
stop string (excluded) and records every batch of prompts it was asked for.
"""
from __future__ import annotations

def make_params(**kw):
    from domainspec.common.models.sampling import SamplingConfig
    return SamplingConfig(**kw)


from domainspec.common.models.generation import Closing  # noqa: E402


class ChatTemplate(Closing):  # close() / with-block, as every backend has
    def apply_chat_template(self, messages):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + "<|im_start|>assistant\n"


class ScriptedBackend(ChatTemplate):
    def __init__(self, scripts: dict[str, list[str] | list[list[str]]]):
        # question -> chunks (one stream) or list of streams (one per sample index)
        self.scripts = scripts
        self.batches: list[list[str]] = []
        self.params_seen = []

    def _streams(self, prompt):
        for q, s in self.scripts.items():
            if q in prompt:
                return s if s and isinstance(s[0], list) else [s]
        raise KeyError(f"no script for prompt {prompt[:80]!r}")

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        self.batches.append(list(prompts))
        self.params_seen.append(params)
        out = []
        for p in prompts:
            streams = self._streams(p)
            k = p.count("```output\n")
            if k == 0:
                texts = [streams[j % len(streams)][0] for j in range(params.n)]
            else:
                # a continuation: find which stream this sequence follows by its first chunk
                stream = next((s for s in streams if _cut(s[0], params.stop) in p), streams[0])
                texts = [stream[k] if k < len(stream) else ""]
            out.append([_cut(t, params.stop) for t in texts])
        return out


def _cut(text, stops):
    idx = [text.find(s) for s in stops or [] if s in text]
    return text[:min(idx)] if idx else text


class FixedBackend(ChatTemplate):
    """Returns ``responses[question][j]`` for the j-th sample (cycling); records params."""

    def __init__(self, responses: dict[str, list[str]]):
        self.responses = responses
        self.params_seen = []

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        self.params_seen.append(params)
        out = []
        for p in prompts:
            q = next(q for q in self.responses if q in p)
            rs = self.responses[q]
            out.append([rs[j % len(rs)] for j in range(params.n)])
        return out
