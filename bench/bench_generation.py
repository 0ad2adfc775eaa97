"""Generation throughput: `hf` (prompt once), `hf-cb` and `openai` vs a plain transformers `generate` loop.

    python bench/bench_generation.py [--model tiny] [--shapes math,mbpp] [--rounds 1] [--threads 1]
        [--backends hf,hf-cb,hf-w2,plain,plain-1] [--server-url http://127.0.0.1:8000/v1] [--prompts 32]

Two workload shapes, the same prompts and settings for every engine in one run:
- ``math``: the math loop's rejection sampling: GSM8K test questions rendered with the chat template and
  the CoT system prompt (``domainspec.math.tir.build_prompt``), n=8, 100 new tokens, temperature 0.7,
  batch 16 (RejectionSamplingConfig's batch size).
- ``mbpp``: MBPP's 3-shot base prompt (``eval/benchmarks/mbpp.py``, ~600+ tokens), n=10, 128 new tokens,
  temperature 0.8, top-p 0.95, stop ``[DONE]``, batch 16.
The plain loop is ``model.generate(do_sample=True, temperature, top_p, num_return_sequences=n,
max_new_tokens, stop_strings)``: ``plain`` packs batch_size // n prompts per call (left padded, at most
batch_size rows per forward as ``hf``; one prompt on ``mbpp``), ``plain-1`` calls it once per prompt. All engines
run on the same loaded model with ``--threads`` intra-op threads (default 1: on a shared machine the thread
policy ``cpu_threads_for`` re-decides per call from the momentary load, which made one engine's run 4x slower
than the same loop's next run). ``hf-wN`` is ``hf`` with ``sampling.workers: N``: N processes, each loading
``--model`` and decoding on its own thread, so it uses N cores where the others use ``--threads``; its ratio
is data parallelism on top of the engine, printed apart. Generated tokens count each row up to its first
end token.
With ``--rounds R`` the engines run in turn R times (A B C A B C ...) and the medians are reported; every
engine first runs a one-prompt warm-up. Printed: seconds, samples/s and generated tokens/s per engine, and
every ratio (each engine against each plain loop). Targets: the best engine >= 2x ``plain`` on ``math``;
``hf`` faster than ``plain`` on ``mbpp``. ``--model`` takes what ModelConfig.name_or_path takes (a folder, a
hub name, a *.gguf file). Not a test.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

SHAPES = {
    "math": dict(n=8, max_new_tokens=100, temperature=0.7, top_p=1.0, batch_size=16, stop=[]),
    "mbpp": dict(n=10, max_new_tokens=128, temperature=0.8, top_p=0.95, batch_size=16, stop=["[DONE]"]),
}


def shape_prompts(shape: str, backend, count: int, data_dir: Path) -> list[str]:
    if shape == "math":
        from domainspec.math.tir import build_prompt

        lines = (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:count]
        return [build_prompt(backend, json.loads(line)["question"], "cot") for line in lines]
    from domainspec.eval.benchmarks.mbpp import MBPP

    return [MBPP.prompt(t, "base") for t in MBPP.load(str(data_dir / "mbpp" / "mbpp.jsonl"), limit=count)]


class PlainLoop:
    """The reference: transformers ``generate`` with its own sampling, ``per_call`` prompts per call."""

    def __init__(self, model, tokenizer, one_prompt: bool):
        self.model, self.tokenizer, self.one_prompt = model, tokenizer, one_prompt
        self.last_stats: dict = {}

    def generate(self, prompts, params):
        import torch

        from domainspec.common.train.cpu_runtime import cpu_threads_for

        tok, per_call = self.tokenizer, 1 if self.one_prompt else max(1, params.batch_size // params.n)
        eos = self.model.generation_config.eos_token_id
        ends = {tok.pad_token_id, tok.eos_token_id, *([eos] if isinstance(eos, int) else eos or [])}
        out, used, t0 = [], 0, time.perf_counter()
        with cpu_threads_for(self.model), torch.inference_mode():
            for b in range(0, len(prompts), per_call):
                enc = tok(prompts[b:b + per_call], return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(self.model.device)
                stop = dict(stop_strings=params.stop, tokenizer=tok) if params.stop else {}
                # top_k=0: transformers' default top-k 50 off, so every engine samples the same distribution
                seqs = self.model.generate(**enc, do_sample=True, temperature=params.temperature, top_p=params.top_p,
                                           top_k=0, num_return_sequences=params.n, max_new_tokens=params.max_new_tokens,
                                           pad_token_id=tok.pad_token_id, **stop)
                for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
                    n = next((j + 1 for j, t in enumerate(row) if t in ends), len(row))
                    used += n
                    out.append(tok.decode(row[:n], skip_special_tokens=True))
        dt = time.perf_counter() - t0
        self.last_stats = {"generated_tokens": used, "seconds": dt}
        return out


def make_engines(names, model, tokenizer, args):
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import ModelConfig
    from domainspec.common.models.sampling import ServerConfig

    engines = {}
    for name in names:
        if name in ("plain", "plain-1"):
            engines[name] = PlainLoop(model, tokenizer, one_prompt=name == "plain-1")
        elif name.startswith("hf-w"):  # hf in N worker processes (sampling.workers), each loading --model
            from domainspec.common.models.sampling import SamplingConfig

            engines[name] = make_backend(SamplingConfig(workers=int(name[4:])), ModelConfig(name_or_path=args.model))
        elif name == "openai":
            engines[name] = make_backend("openai", ModelConfig(name_or_path=args.model), tokenizer=tokenizer,
                                         server=ServerConfig(base_urls=[args.server_url]))
        else:
            engines[name] = make_backend(name, model=model, tokenizer=tokenizer)
    return engines


def run_shape(shape: str, engines: dict, tokenizer, args) -> dict[str, dict]:
    from domainspec.common.models.sampling import SamplingConfig

    prompts = shape_prompts(shape, next(e for e in engines.values() if hasattr(e, "apply_chat_template")),
                            args.prompts if shape == "math" else args.mbpp_prompts, Path(args.data))
    params = SamplingConfig(**SHAPES[shape], seed=args.seed)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"\n== {shape}: {len(prompts)} prompts (median {statistics.median(lengths):.0f} tokens, max {max(lengths)}), "
          f"n={params.n}, max_new_tokens={params.max_new_tokens}, temperature={params.temperature}, "
          f"top_p={params.top_p}, batch_size={params.batch_size}, stop={params.stop}")
    for engine in engines.values():  # warm-up: first-call costs out of the timings
        engine.generate(prompts[:1], params.replace(n=2, max_new_tokens=4))
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, engine in engines.items():
            t0 = time.perf_counter()
            engine.generate(prompts, params)
            runs[name].append((time.perf_counter() - t0, engine.last_stats["generated_tokens"]))
    samples = len(prompts) * params.n
    figures = {}
    for name, rs in runs.items():
        dt = statistics.median(r[0] for r in rs)
        tokens = statistics.median(r[1] for r in rs)
        figures[name] = {"seconds": dt, "samples_per_s": samples / dt, "tokens_per_s": tokens / dt, "tokens": tokens}
        print(f"  {name:8s} {dt:7.1f} s  {samples / dt:7.2f} samples/s  {tokens / dt:8.1f} generated tokens/s"
              f"  ({tokens:.0f} tokens)")
    for ref in [r for r in ("plain", "plain-1") if r in figures]:
        for name, f in figures.items():
            if name != ref:
                print(f"  ratio {name}/{ref}: samples/s {f['samples_per_s'] / figures[ref]['samples_per_s']:.2f}x, "
                      f"tokens/s {f['tokens_per_s'] / figures[ref]['tokens_per_s']:.2f}x")
    if "hf" in figures and "hf-cb" in figures:
        print(f"  ratio hf-cb/hf: samples/s {figures['hf-cb']['samples_per_s'] / figures['hf']['samples_per_s']:.2f}x")
    return figures


def main() -> int:
    from domainspec.eval.benchmarks.decontamination import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="ModelConfig.name_or_path (default: the tiny model)")
    ap.add_argument("--shapes", default="math,mbpp")
    ap.add_argument("--backends", default="hf,hf-cb,hf-w2,plain,plain-1")
    ap.add_argument("--server-url", help="also time backend 'openai' against this OpenAI-compatible server")
    ap.add_argument("--prompts", type=int, default=32, help="math prompts")
    ap.add_argument("--mbpp-prompts", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every engine (a cap: "
                                                            "cpu_threads_for only lowers it)")
    ap.add_argument("--data", default=str(default_data_dir()), help="folder holding gsm8k/ and mbpp/")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from domainspec.common.models.loading import ModelConfig, load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(ModelConfig(name_or_path=args.model))
    names = args.backends.split(",") + (["openai"] if args.server_url else [])
    engines = make_engines(names, model, tokenizer, args)
    results = {shape: run_shape(shape, engines, tokenizer, args) for shape in args.shapes.split(",")}
    if "math" in results and "plain" in results["math"]:
        for label, pool in (("one process", False), ("worker processes", True)):
            cands = [(f["samples_per_s"], n) for n, f in results["math"].items()
                     if not n.startswith("plain") and n.startswith("hf-w") == pool]
            if cands:
                best = max(cands)
                ratio = best[0] / results["math"]["plain"]["samples_per_s"]
                print(f"target math ({label}): best engine ({best[1]}) {ratio:.2f}x plain (>= 2x):",
                      "met" if ratio >= 2 else "NOT met")
    if "mbpp" in results and {"hf", "plain"} <= results["mbpp"].keys():
        ratio = results["mbpp"]["hf"]["samples_per_s"] / results["mbpp"]["plain"]["samples_per_s"]
        print(f"target mbpp: hf {ratio:.2f}x plain (> 1x):", "met" if ratio > 1 else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
