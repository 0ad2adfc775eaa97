"""Per-round table of the math self-improvement loop (summary.json + report.md); pure, no training."""
from __future__ import annotations

from typing import Any, Sequence


def table_rows(rounds: Sequence[dict]) -> list[dict]:
    """One row per (round, problem set, mode) with pass@1, maj@k, rm@k and their sample counts."""
    rows = []
    for r in rounds:
        rm = r.get("rm_heldout") or {}
        rs = r.get("rejection_sampling") or {}
        for set_name, per_mode in (r.get("eval") or {}).items():
            for mode, m in per_mode.items():
                k = m.get("k", 1)
                rows.append({
                    "round": r["round"], "set": set_name, "mode": mode, "problems": m.get("num_problems"),
                    "pass@1": m.get("pass@1"), "k": k, "maj@k": m.get(f"maj@{k}"), "rm@k": m.get(f"rm@{k}"),
                    "sample_accuracy": m.get("sample_accuracy"), "eval_samples": m.get("num_samples"),
                    "rm_pairwise_accuracy": rm.get("pairwise_accuracy"), "rm_heldout_pairs": rm.get("num_pairs"),
                    "round_samples": rs.get("num_samples"), "round_sample_accuracy": rs.get("sample_accuracy"),
                    "sft_kept": rs.get("num_kept", r.get("sft_examples")), "seconds": r.get("seconds"),
                })
    return rows


def summarize(cfg: Any, rounds: Sequence[dict], seconds: float) -> dict:
    rows = table_rows(rounds)
    first = {(x["set"], x["mode"]): x["pass@1"] for x in rows if x["round"] == 0}
    last_round = max((x["round"] for x in rows), default=0)
    gain = {f"{s}/{m}": x["pass@1"] - first[(s, m)] for x in rows if x["round"] == last_round
            for s, m in [(x["set"], x["mode"])] if (s, m) in first}
    return {"rounds": list(rounds), "table": rows, "pass@1_gain_over_initial_sft": gain, "seconds": seconds,
            "config_hash": cfg.content_hash()}


def _f(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def markdown(summary: dict) -> str:
    lines = ["# Math self-improvement loop", "",
             "Round 0 is the initial SFT model; round k is after k rounds of sample -> grade -> RM -> "
             "rejection sampling -> SFT. pass@1: greedy accuracy; maj@k / rm@k over k samples per problem "
             "(rm@k uses the RM trained in that round; round 0 has none). RM acc: pairwise accuracy of "
             "that round's RM on held-out questions' (correct, incorrect) pairs.", "",
             "| round | set | mode | problems | pass@1 | maj@k | rm@k | k | eval samples | RM acc (pairs) "
             "| round samples (acc) | SFT kept | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in summary["table"]:
        rm = "-" if x["rm_pairwise_accuracy"] is None else f"{x['rm_pairwise_accuracy']:.3f} ({x['rm_heldout_pairs']})"
        rs = "-" if x["round_samples"] is None else f"{x['round_samples']} ({x['round_sample_accuracy']:.3f})"
        lines.append(f"| {x['round']} | {x['set']} | {x['mode']} | {_f(x['problems'])} | {_f(x['pass@1'])} | "
                     f"{_f(x['maj@k'])} | {_f(x['rm@k'])} | {x['k']} | {_f(x['eval_samples'])} | {rm} | {rs} | "
                     f"{_f(x['sft_kept'])} | {_f(x['seconds'])} |")
    lines += ["", "pass@1 gain over the initial SFT model: "
              + (", ".join(f"{k} {v:+.3f}" for k, v in summary["pass@1_gain_over_initial_sft"].items()) or "-"),
              f"Total time: {summary['seconds']:.0f} s", ""]
    if summary.get("problems"):
        lines += ["Problem sets (data sources: rows read, held-out questions and contaminated rows dropped):", ""]
        for role, p in summary["problems"].items():
            dropped = "" if "rows" not in p else (
                f", {p['rows']} rows, {p['heldout_questions_dropped']} held-out questions dropped, "
                f"{p.get('contaminated_dropped', 0)} contaminated dropped {p.get('contaminated_by') or ''}".rstrip())
            per = f" ({p['problems_per_round']} per round, {p['without_answer']} without an answer)"                 if "problems_per_round" in p else f" ({p.get('problems')} problems)"
            lines.append(f"- {role}: {p['source']}{per}{dropped}")
        lines.append("")
    synth = [(r["round"], r["synthesis"]) for r in summary["rounds"] if r.get("synthesis")]
    if synth:
        lines += ["Prompted synthesis (new problems written by the writer model, answers fixed by its majority vote; "
                  "each dropped one is in round_<k>/synthesis/dropped.jsonl with its reason):", ""]
        lines += [f"- round {k}: writer {s['writer']}, {s['requested']} requested, {s['parsed_new']} new questions, "
                  f"{s['kept']} kept; dropped: "
                  + (", ".join(f"{why} {n}" for why, n in s["dropped"].items()) or "none") for k, s in synth]
        lines.append("")
    phases = [(r["round"], r["phase_seconds"]) for r in summary["rounds"] if r.get("phase_seconds")]
    if phases:
        lines += ["Time per phase (seconds; a phase finished in an earlier run is not timed):", ""]
        lines += [f"- round {k}: " + ", ".join(f"{name} {v:.0f}" for name, v in times.items()) for k, times in phases]
        lines.append("")
    return "\n".join(lines)
