"""A comparison report, rendered from results.jsonl only (nothing typed by hand).

One table per dataset: the trivial rows first (majority class of the reported split, zero-shot),
then every method (and ablation value) as mean +- std over its seeds, on the reported split and
on every eval_also file; selection score (held out of train), trainable parameters, artifact
bytes, training seconds and the commit each row ran on. A row whose mean is within the larger of
the two standard deviations of the best row's is marked `~` (noise, not a win); the best row is
the highest mean among rows of two or more seeds (one seed's score has no spread to judge). Plots (PNG,
matplotlib): accuracy against trainable parameters, the selection curves, and one line plot per
ablation axis.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("accuracy", "bleu", "p_at_1")
FRACTIONS = ("accuracy", "p_at_1")  # shown in percent; BLEU is already on sacrebleu's 0-100 scale


def shown(metric: str, value: float) -> float:
    """A metric's value as tables show it: accuracy and P@1 in percent, BLEU as sacrebleu gives it."""
    return float(value) * (100 if metric in FRACTIONS else 1)


def metric_of(evaluation: dict) -> tuple[str, float] | None:
    """(metric, value as shown) of an evaluation."""
    for key in METRICS:
        if key in evaluation:
            return key, shown(key, evaluation[key])
    return None


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(ms: tuple[float, float] | None, n: int) -> str:
    if ms is None:
        return "-"
    mean, std = ms
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


def group_rows(records: list[dict]) -> dict[str, list[dict]]:
    """dataset -> table rows (baselines, then one per method and ablation value)."""
    tables: dict[str, list[dict]] = defaultdict(list)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("status") != "ok":
            continue
        if r["kind"] == "baseline":
            templates = {b["template"] for b in r["baselines"]}
            models = {b.get("model", r.get("model")) for b in r["baselines"]}
            for i, b in enumerate(r["baselines"]):
                report_key = next(iter(b["evaluations"]))
                first = b["evaluations"][report_key]
                trivial = "majority_object_p_at_1" if "p_at_1" in first else "majority_baseline"
                if i == 0 and all(trivial in v for v in b["evaluations"].values()):  # classification, facts
                    tables[r["dataset"]].append({
                        "name": "majority object" if "p_at_1" in first else "majority class",
                        "files": list(b["evaluations"]), "n": 1,
                        "scores": {k: (100 * float(v[trivial]), 0.0) for k, v in b["evaluations"].items()},
                        "params": 0, "bytes": 0, "seconds": None, "commits": {r["commit"]}, "axes": {}})
                tags = ([f"{b['template']!r}"] if b["template"] and len(templates) > 1 else []) + \
                    ([f"model={b.get('model')}"] if len(models) > 1 else [])
                tables[r["dataset"]].append({
                    "name": "zero-shot" + (f" ({', '.join(tags)})" if tags else ""),
                    "files": list(b["evaluations"]), "n": 1,
                    "scores": {k: (metric_of(v)[1], 0.0) for k, v in b["evaluations"].items() if metric_of(v)},
                    "params": 0, "bytes": 0, "seconds": None, "commits": {r["commit"]}, "axes": {},
                    "metric": metric_of(first)[0] if metric_of(first) else "accuracy"})
            continue
        key = (r["dataset"], r["method_name"], tuple(sorted(r.get("axes", {}).items())))
        groups[key].append(r)
    for (dataset, name, axes), runs in groups.items():
        files = list(runs[0]["evaluations"])
        scores = {}
        for f in files:
            vals = [metric_of(x["evaluations"][f])[1] for x in runs if f in x["evaluations"] and
                    metric_of(x["evaluations"][f])]
            if vals:
                scores[f] = mean_std(vals)
        metric = (metric_of(runs[0]["evaluations"].get(files[0], {})) or ("accuracy",))[0]
        selection = [shown(metric, x["summary"]["best_dev_score"]) for x in runs
                     if x["summary"].get("best_dev_score") is not None]
        label = name + (" [" + ", ".join(f"{k}={v}" for k, v in axes) + "]" if axes else "")
        tables[dataset].append({
            "name": label, "method_name": name, "files": files, "n": len(runs), "scores": scores,
            "selection": mean_std(selection) if selection else None, "axes": dict(axes),
            "params": runs[0]["summary"].get("trainable_parameters"), "bytes": runs[0]["summary"].get("artifact_bytes"),
            "seconds": statistics.fmean(x["summary"].get("train_seconds", 0.0) for x in runs),
            "commits": {x["commit"] for x in runs}, "seeds": sorted(x["seed"] for x in runs)})
    return tables


def render_table(rows: list[dict]) -> str:
    files = []
    for r in rows:
        files += [f for f in r["files"] if f not in files]
    report = files[0] if files else "reported"
    trained = [r for r in rows if r.get("selection") is not None or r.get("method_name")]
    # the best row is one whose spread is known: a single seed's score has no std to compare against,
    # so it can be within the noise of the best, never the best itself (unless no row has two seeds)
    spread = [r for r in trained if r["n"] >= 2] or trained
    best = max(spread, key=lambda r: r["scores"].get(report, (-1, 0))[0], default=None)
    head = ["", "seeds", *[f"{f}" for f in files], "selection (held out of train)", "trainable", "artifact bytes",
            "train s", "commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        marks = ""
        if best is not None and r is not best and r in trained and report in r["scores"] and report in best["scores"]:
            (m, s), (bm, bs) = r["scores"][report], best["scores"][report]
            if abs(m - bm) < max(s, bs):
                marks = " ~"
        if r is best:
            marks = " (best)"
        cells = [r["name"] + marks, str(r["n"])]
        cells += [_fmt(r["scores"].get(f), r["n"]) for f in files]
        cells.append(_fmt(r.get("selection"), r["n"]) if r.get("selection") else "-")
        cells += [f"{r['params']:,}" if r.get("params") is not None else "-",
                  f"{r['bytes']:,}" if r.get("bytes") else "-",
                  f"{r['seconds']:.0f}" if r.get("seconds") else "-", ", ".join(sorted(r["commits"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_glance(records: list[dict], name: str) -> str:
    """The short form for a README: per dataset, each row's score on every file, nothing else."""
    lines = []
    for dataset, rows in group_rows(records).items():
        files = []
        for r in rows:
            files += [f for f in r["files"] if f not in files]
        lines += [f"**{dataset}** (`{name}`; details in docs/BENCHMARKS.md)", "",
                  "| | " + " | ".join(files) + " |", "|---|" + "---|" * len(files)]
        lines += ["| " + r["name"] + " | " + " | ".join(_fmt(r["scores"].get(f), r["n"]) for f in files) + " |"
                  for r in rows]
    return "\n".join(lines) + "\n"


def still_failed(records: list[dict]) -> list[dict]:
    """Failed records of cells that no later run finished (a failure re-run with success is history)."""
    ok_ids = {r["id"] for r in records if r.get("status") == "ok"}
    return [r for r in records if r.get("status") == "failed" and r["id"] not in ok_ids]


def render(records: list[dict], name: str, images: str | None = None) -> str:
    """The report's markdown; `images`: the folder (relative to the report) holding its PNGs."""
    ok = [r for r in records if r.get("status") == "ok"]
    failed = still_failed(records)
    first = ok[0] if ok else (records[0] if records else {})
    lines = [f"Experiment `{name}`: {len([r for r in ok if r['kind'] == 'cell'])} cells on "
             f"`{first.get('model', '?')}`, {first.get('max_steps', '?')} steps; machine: "
             f"{'; '.join(dict.fromkeys(r['machine'] for r in ok if r.get('machine'))) or '?'}; "
             f"versions: {', '.join(f'{k} {v}' for k, v in first.get('versions', {}).items())}.",
             "", "Scores are mean ± std over seeds: accuracy and P@1 in percent, BLEU on sacrebleu's 0-100 "
             "scale. The first file column is the split reported (never "
             "the one a checkpoint is selected on: selection uses examples held out of train); the others are "
             "the eval_also files (domain shift). `(best)`: the highest mean among rows of two or more seeds; "
             "`~`: within the larger std of the best row (noise, not a difference)."]
    for dataset, rows in group_rows(records).items():
        lines += ["", f"**{dataset}**", "", render_table(rows)]
    if failed:
        lines += ["", "Failed cells: " + "; ".join(r["error"] for r in failed)]
    if images:
        lines += ["", f"![accuracy vs trainable parameters]({images}/params.png)",
                  f"![selection curves]({images}/curves.png)"]
        axes = sorted({k for r in ok if r.get("kind") == "cell" for k in r.get("axes", {})})
        lines += [f"![{a}]({images}/axis_{a}.png)" for a in axes]
    return "\n".join(lines) + "\n"


def _save(fig, ax, path: Path, legend: int = 6) -> Path:
    import matplotlib.pyplot as plt

    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(records: list[dict], folder: Path) -> list[Path]:
    """PNG plots next to the report; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    tables = group_rows(records)
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for dataset, rows in tables.items():
        for r in rows:
            if not r.get("method_name") or not r["scores"] or not r.get("params"):
                continue  # an ensemble has no parameters of its own to place on this axis
            mean, std = next(iter(r["scores"].values()))
            ax.errorbar([max(r["params"] or 1, 1)], [mean], yerr=[std], fmt="o", capsize=3,
                        label=f"{dataset}: {r['name']}")
        for r in rows:
            if r["name"] == "zero-shot" and r["scores"]:
                ax.axhline(next(iter(r["scores"].values()))[0], ls="--", lw=0.8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("reported-split score (% or BLEU)")
    written.append(_save(fig, ax, folder / "params.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in records:
        if r.get("status") == "ok" and r.get("kind") == "cell":
            pts = [(c["step"], c["dev_score"]) for c in r.get("curve", []) if "dev_score" in c]
            if pts:
                ax.plot(*zip(*pts, strict=True), lw=0.8, label=r["id"])
    ax.set_xlabel("step")
    ax.set_ylabel("selection score (held out of train)")
    written.append(_save(fig, ax, folder / "curves.png", legend=5))

    axes = sorted({k for r in records if r.get("kind") == "cell" for k in r.get("axes", {})})
    for a in axes:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for dataset, rows in tables.items():
            by_method: dict[str, list] = defaultdict(list)
            for r in rows:
                if a in r.get("axes", {}) and r["scores"]:
                    by_method[r["method_name"]].append((r["axes"][a], *next(iter(r["scores"].values()))))
            for method, pts in by_method.items():
                pts.sort(key=lambda p: (isinstance(p[0], str), p[0]))
                xs = [str(p[0]) for p in pts]
                ax.errorbar(xs, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                            label=f"{dataset}: {method}")
        ax.set_xlabel(a)
        ax.set_ylabel("reported-split score (% or BLEU)")
        written.append(_save(fig, ax, folder / f"axis_{a}.png"))
    return written
