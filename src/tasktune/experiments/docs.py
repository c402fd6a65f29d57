"""Generated sections of the docs: `<!-- compare:NAME:start -->` ... `<!-- compare:NAME:end -->`
holds the report of the results folder NAME, rendered from its results.jsonl and nothing else;
`compare:NAME:glance` holds its short form (the README's results at a glance). `check`
re-renders every such section and lists the ones that differ from the file (CI runs it)."""

from __future__ import annotations

import re
from pathlib import Path

from tasktune import TasktuneError
from tasktune.experiments.report import render, render_glance
from tasktune.experiments.runner import read_results


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- compare:{re.escape(name)}:start -->\n.*?<!-- compare:{re.escape(name)}:end -->", re.S)


def section(results: Path, name: str) -> str:
    """The section `name` (NAME or NAME:glance) rendered from the results folder."""
    records = read_results(results)
    if not records:
        raise TasktuneError(f"{results}: no results.jsonl (run `tasktune compare` first)")
    base, _, form = name.partition(":")
    body = render_glance(records, base) if form == "glance" else render(records, base)
    return f"<!-- compare:{name}:start -->\n{body}<!-- compare:{name}:end -->"


def write_section(doc: Path, results: Path, name: str) -> bool:
    """Insert or replace the section; True when the file changed."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    new = section(results, name)
    pattern = _pattern(name)
    updated = pattern.sub(lambda _: new, text) if pattern.search(text) else text.rstrip() + "\n\n" + new + "\n"
    if updated != text:
        doc.write_text(updated, encoding="utf-8")
    return updated != text


def sections_in(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    return re.findall(r"<!-- compare:([^:>]+(?::glance)?):start -->", text)


def check(doc: Path, results_root: Path) -> list[str]:
    """Names of the generated sections of `doc` that its results (results_root/NAME) no longer give."""
    text = doc.read_text(encoding="utf-8")
    stale = []
    for name in sections_in(doc):
        match = _pattern(name).search(text)
        if match is None or match.group(0) != section(results_root / name.partition(":")[0], name):
            stale.append(name)
    return stale


# ---- sections rendered from a benchmark script's results file (docs/results/NAME.json) ----------
def _speed_glance(data: dict) -> str:
    """tasktune / PEFT at the same backbone dtype, PEFT tuned for the machine (the headline)."""
    rows = data["ratios"]
    keys = [k for k in rows if " vs PEFT tuned " in k]
    peak = data.get("gemm_peak", {})
    gpu = "--device cuda" in data.get("command", "")  # PEFT keeps sdpa there; memory is the GPU's
    spread = data.get("ratio_rounds") or {}  # --rounds N: the range of the rounds' own ratios
    head = (f"| tasktune / PEFT tuned (same backbone dtype, {'sdpa' if gpu else 'eager'} attention, label-only "
            "logits) | ratio |")
    lines = [head + (" rounds' range |" if spread else ""), "|---|---|" + ("---|" if spread else "")]
    for k in keys:
        cell = f" {spread[k][0]:.2f}-{spread[k][1]:.2f}x |" if k in spread else (" |" if spread else "")
        lines.append(f"| {k.replace('peak RSS', 'peak GPU memory') if gpu else k} | {rows[k]:.2f}x |{cell}")
    machine = data.get("machine", "") + (f", commit {data['commit']}" if data.get("commit") else "")
    defaults = any(k for k in rows if " vs PEFT defaults " in k)
    if peak:
        scale, unit = (1e12, "TFLOP/s") if gpu else (1e9, "GFLOP/s")
        lines += ["", "GEMM peak " + ", ".join(f"{d} {v / scale:.0f} {unit}" for d, v in peak.items())
                  + (f" ({machine})" if machine else " (machine: the speed_vs_peft section of docs/BENCHMARKS.md)")
                  + ". Throughput ratios above 1 and memory ratios below 1 favour tasktune"
                  + ("; PEFT's untuned defaults are second rows in docs/BENCHMARKS.md." if defaults else ".")]
    return "\n".join(lines) + "\n"


def _serve_scale(data: dict) -> str:
    """Mixed batches against one task per forward, per kind and number of tasks."""
    lines = ["| tasks | kind | distinct tasks / batch | mixed req/s | one task per forward req/s | mixed / one task "
             "per forward | mixed p50 / p99 s | one task per forward p50 / p99 s | RSS per task KB | artifact KB | "
             "RSS / artifact |", "|" + "---|" * 11]
    for r in data["rows"]:
        m, t = r["mixed"], r["task_at_a_time"]
        lines.append(f"| {r['tasks']} | {r['kind']} | {r['distinct_tasks_per_batch']:.1f} | "
                     f"{m['requests_per_s']:.1f} | {t['requests_per_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{m['p50_s']:.2f} / {m['p99_s']:.2f} | "
                     f"{t['p50_s']:.2f} / {t['p99_s']:.2f} | {r['rss_per_task_bytes'] / 1024:.0f} | "
                     f"{r['artifact_bytes'] / 1024:.0f} | {r['rss_per_task_bytes'] / r['artifact_bytes']:.2f} |")
    lines += ["", f"Backbone {data['dtype']}, batches of {data['batch']}, commit {data['commit']}; "
              f"{data['machine']}. Latency is within a batch under saturation (from the batch's start to the "
              "request's result). RSS per task: measured in a fresh process over the tasks added after the first; "
              "at 10 tasks it is within the allocator's noise."]
    return "\n".join(lines) + "\n"


def _cost_curves(data: dict) -> str:
    """Step time and memory per axis and model (benchmarks/cost_curves.py)."""
    peak = data["gemm_peak_bf16"]
    lines = ["| model | varied | value | real tokens a row | pieces | step s | tokens/s | est. GFLOP/s "
             "| % of bf16 GEMM peak | peak RSS GB | peak over loaded model GB |", "|" + "---|" * 11]
    for r in data["rows"]:
        lines.append(f"| {r['model']} | {r['axis']} | {r['value']} | {r['row_tokens']:.0f} | {r['pieces']} | "
                     f"{r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {r['flops_s'] / 1e9:.0f} | "
                     f"{r['flops_s'] / peak:.0%} | {r['peak_rss_gb']:.2f} | {r['peak_over_loaded_gb']:.2f} |")
    lines += ["", "Fixed unless varied: rows of 64 real tokens plus the virtual ones, batch 16, 20 virtual tokens. "
              f"bf16 GEMM peak {peak / 1e9:.0f} GFLOP/s (2048^3, best of 5), commit {data['commit']}; "
              f"{data['machine']}."]
    return "\n".join(lines) + "\n"


def _seconds_to(run: dict, accuracy: float) -> float | None:
    """Seconds to a run's first evaluation at `accuracy` or better (None: it never got there)."""
    return next((e["seconds"] for e in run.get("curve", []) if e["accuracy"] >= accuracy), None)


def _time_to_accuracy(data: dict) -> str:
    """Each method's fastest run to the threshold, over its learning-rate sweep (benchmarks/time_to_accuracy.py)."""
    threshold = data["threshold"]
    by_method: dict[str, list[dict]] = {}
    for r in data["runs"]:
        if "error" not in r:
            by_method.setdefault(r["method"], []).append(r)
    lines = [f"| method (fastest of its learning rates) | seconds to {threshold:.2f} dev accuracy | at step | lr "
             "| rates tried |", "|---|---|---|---|---|"]
    for method, runs in by_method.items():
        reached = [r for r in runs if r.get("seconds_to_threshold") is not None]
        r = min(reached, key=lambda x: x["seconds_to_threshold"]) if reached else runs[0]
        tried = ", ".join(f"{x['lr']:g}" for x in data["runs"] if x["method"] == method)
        secs = f"{r['seconds_to_threshold']:.0f}" if reached else f"never (> {r['run_seconds']:.0f})"
        lines.append(f"| {method} | {secs} | {r.get('reached_step') or ''} | {r['lr']:g} | {tried} |")
    b = data.get("baselines")
    if b:  # the trivial rows: no training at all
        for name, acc, secs in (("zero-shot template (no training)", b["zero_shot_accuracy"], b["zero_shot_seconds"]),
                                ("most common label", b["majority_baseline"], None)):
            reached = f"{secs:.0f}" if secs is not None and acc >= threshold else "never"
            lines.append(f"| {name} | {reached} (dev accuracy {acc:.3f}) | 0 | | |")
    # The threshold sits near every method's plateau, where one sentence of 872 decides the step
    # that crosses it; lower thresholds, read from the same curves, show whether an order holds.
    lower = [t for t in (0.85, 0.86, 0.87) if t < threshold] + [threshold]
    lines += ["", "| method: seconds to dev accuracy (fastest rate each) | " + " | ".join(f">= {t:.2f}" for t in lower)
              + " |", "|---|" + "---|" * len(lower)]
    for method, runs in by_method.items():
        hits = [[s for r in runs if (s := _seconds_to(r, t)) is not None] for t in lower]
        lines.append(f"| {method} | " + " | ".join(f"{min(h):.0f}" if h else "never" for h in hits) + " |")
    ratio = data.get("ratio_fastest_peer_over_tasktune")
    planned = data.get("planned_runs", len(data["runs"]))
    lines += ["", (f"tasktune reaches it **{ratio:.1f}x** sooner than the fastest PEFT run. " if ratio else "")
              + (f"Partial: {len(data['runs'])} of {planned} planned runs. " if len(data["runs"]) < planned else "")
              + f"Wall seconds from the command's start, imports, model load and evaluations included; "
              f"commit {data.get('commit', 'unknown')}; {data.get('machine', '')}."]
    return "\n".join(lines) + "\n"


def _decoding(beams: int) -> str:
    return "greedy" if beams == 1 else f"beam {beams}"


def _generation_glance(data: dict) -> str:
    """tasktune's batched decoder / PEFT + generate (its cache keyword fixed), equal output lengths."""
    rows = {(r["library"], r["method"], r["beams"]): r for r in data["rows"] if "error" not in r}
    lines = ["| method, decoding | tasktune tokens/s | PEFT + generate tokens/s | ratio | peak RSS ratio |",
             "|---|---|---|---|---|"]
    for (lib, method, beams), ours in rows.items():
        peer = rows.get(("PEFT + generate", method, beams))
        if lib != "tasktune" or peer is None:
            continue
        lines.append(f"| {method}, {_decoding(beams)} | {ours['tokens_s']:.1f} | {peer['tokens_s']:.1f} | "
                     f"{ours['tokens_s'] / peer['tokens_s']:.2f}x | {ours['peak_rss_gb'] / peer['peak_rss_gb']:.2f}x |")
    broken = [r for (lib, _, _), r in rows.items() if "as installed" in lib]
    note = ""
    if broken:
        note = (" As installed, PEFT's generate decodes these adapters wrongly on this transformers (it injects the "
                "virtual tokens again at every step): " +
                ", ".join(f"{r['method']} {_decoding(r['beams'])} {r['tokens_s']:.1f} tokens/s" for r in broken) + ".")
    rounds = max((r.get("rounds", 1) for r in rows.values()), default=1)
    each = f" Each figure the median of {rounds} rounds, each row its own process." if rounds > 1 else ""
    lines += ["", f"Commit {data.get('commit', 'unknown')}; {data.get('machine', '')}.{each}{note}"]
    return "\n".join(lines) + "\n"


RESULT_RENDERERS = {"time_to_accuracy": _time_to_accuracy, "speed_vs_peft": _speed_glance, "serve_scale": _serve_scale,
                    "cost_curves": _cost_curves, "generation_speed": _generation_glance}


def renderer_of(name: str):
    """The renderer of results file NAME: its own, or that of the benchmark it is one run of (a benchmark
    that publishes one file per kind of matrix unit names it BENCHMARK_<isa>, e.g. speed_vs_peft_amx)."""
    if name in RESULT_RENDERERS:
        return RESULT_RENDERERS[name]
    return next((f for base, f in RESULT_RENDERERS.items() if name.startswith(base + "_")), None)


def result_section(results_dir: Path, name: str) -> str:
    import json

    path = results_dir / f"{name}.json"
    render = renderer_of(name)
    if render is None or not path.is_file():
        raise TasktuneError(f"no results renderer or file for section 'result:{name}' ({path})")
    body = render(json.loads(path.read_text(encoding="utf-8")))
    return f"<!-- result:{name}:start -->\n{body}<!-- result:{name}:end -->"


def result_sections_in(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    return re.findall(r"<!-- result:([^:>]+):start -->", text)


def _result_pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- result:{re.escape(name)}:start -->\n.*?<!-- result:{re.escape(name)}:end -->", re.S)


def write_result_sections(doc: Path, results_dir: Path) -> list[str]:
    """Re-render every result:NAME section of `doc`; the names that changed."""
    text = doc.read_text(encoding="utf-8")
    changed = []
    for name in result_sections_in(doc):
        new = result_section(results_dir, name)
        updated = _result_pattern(name).sub(lambda _, new=new: new, text)
        if updated != text:
            changed.append(name)
            text = updated
    if changed:
        doc.write_text(text, encoding="utf-8")
    return changed


def check_results(doc: Path, results_dir: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    return [n for n in result_sections_in(doc)
            if (m := _result_pattern(n).search(text)) is None or m.group(0) != result_section(results_dir, n)]
