"""h-accuracy under underspecified demonstrations, with interventions (Si et al. 2023).

For each seed: k demonstrations (half h1=h2=1, half h1=h2=0) are consistent with both
hypotheses; on the disambiguating test cells (h1 != h2), h1-accuracy is the share of
predictions equal to h1, h2-accuracy the share equal to h2. Interventions: an instruction
naming the intended feature, meaningful verbalizer words, and k' disambiguating
demonstrations (labelled by h1) in place of underspecified ones.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.icl.probe_set import ProbeSet
from tasktune.methods import InContextConfig

INTERVENTIONS = ("none", "instruction", "verbalizer", "disambig")


@dataclass
class ProbeConfig:
    template: str = "{question}\nAnswer:{answer}"
    """Template of demonstrations and test inputs."""
    words: tuple[str, str] = (" 0", " 1")
    """Underspecified label words for h1 = 0 and h1 = 1."""
    meaningful_words: tuple[str, str] = (" no", " yes")
    """Label words of the 'verbalizer' intervention."""
    instruction: str = "Answer the question about the passage: 1 means yes, 0 means no."
    """Text of the 'instruction' intervention (name the intended feature h1)."""
    shots: int = 16
    """Demonstrations per prompt (half h1=h2=1, half h1=h2=0)."""
    disambig: int = 4
    """Demonstrations replaced by disambiguating ones in the 'disambig' intervention."""
    seeds: int = 3
    """Demonstration sets (seeds 0..N-1)."""
    n_test: int = 100
    """Test items per disambiguating cell (1_0 and 0_1)."""
    n_agree: int = 50
    """Test items per agreeing cell (1_1 and 0_0), for the sanity accuracy."""
    calibrate: bool = False
    """Contextual calibration on content-free inputs."""
    max_length: int = 4096


def _sample(rows: list[Example], n: int, gen: torch.Generator) -> list[Example]:
    return [rows[i] for i in torch.randperm(len(rows), generator=gen).tolist()[:n]]


def _demos(ps: ProbeSet, cfg: ProbeConfig, seed: int, intervention: str) -> tuple[list[Example], set[str]]:
    gen = torch.Generator().manual_seed(seed)
    k_dis = cfg.disambig if intervention == "disambig" else 0
    k_under = cfg.shots - k_dis
    demos = _sample(ps.cells["demos_1_1"], k_under // 2 + k_under % 2, gen) + _sample(ps.cells["demos_0_0"],
                                                                                       k_under // 2, gen)
    used: set[str] = set()
    if k_dis:
        dis = _sample(ps.cells["testset_1_0"], k_dis // 2 + k_dis % 2, gen) + _sample(ps.cells["testset_0_1"],
                                                                                       k_dis // 2, gen)
        used = {ex.where for ex in dis}
        demos += dis
    order = torch.randperm(len(demos), generator=gen).tolist()
    return [demos[i] for i in order], used


def run_probe(backbone, ps: ProbeSet, cfg: ProbeConfig, interventions=("none",)) -> dict:
    results: dict[str, dict] = {}
    for intervention in interventions:
        words = cfg.meaningful_words if intervention == "verbalizer" else cfg.words
        verbalizer = {"0": words[0], "1": words[1]}
        per_seed = []
        for seed in range(cfg.seeds):
            demos, used = _demos(ps, cfg, seed, intervention)
            gen = torch.Generator().manual_seed(1000 + seed)
            dis = {c: _sample([e for e in ps.cells[c] if e.where not in used], cfg.n_test, gen)
                   for c in ("testset_1_0", "testset_0_1")}
            agree = {c: _sample(ps.cells[c], cfg.n_agree, gen) for c in ("testset_1_1", "testset_0_0")}
            icl = InContextConfig(shots=len(demos), calibrate=cfg.calibrate,
                                  instruction=cfg.instruction if intervention == "instruction" else "",
                                  demos=[{"fields": d.fields, "label": d.label} for d in demos])
            task = build_task(backbone, "in-context", icl, cfg.template, ["0", "1"], verbalizer, cfg.max_length)
            counts = {"h1": 0, "h2": 0, "n": 0, "agree_ok": 0, "agree_n": 0}
            for cell, rows in {**dis, **agree}.items():
                h1, h2 = ProbeSet.h(cell)
                pred = task.predict_scores(rows, batch_size=16).argmax(-1)  # label index 0 -> "0"
                predicted = [int(task.verbalizer.labels[int(p)]) for p in pred]
                if h1 != h2:
                    counts["h1"] += sum(p == h1 for p in predicted)
                    counts["h2"] += sum(p == h2 for p in predicted)
                    counts["n"] += len(predicted)
                else:
                    counts["agree_ok"] += sum(p == h1 for p in predicted)
                    counts["agree_n"] += len(predicted)
            per_seed.append({"seed": seed, "h1_accuracy": counts["h1"] / counts["n"],
                             "h2_accuracy": counts["h2"] / counts["n"],
                             "agreeing_accuracy": counts["agree_ok"] / counts["agree_n"], "n": counts["n"]})
        summary = {}
        for key in ("h1_accuracy", "h2_accuracy", "agreeing_accuracy"):
            vals = [r[key] for r in per_seed]
            summary[key] = statistics.mean(vals)
            summary[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        results[intervention] = {**summary, "seeds": per_seed}
    return {"probe": ps.name, "shots": cfg.shots, "results": results}


def plot(results: list[dict], path: str) -> None:
    """h1 vs h2 accuracy per probe set and intervention (one panel per set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        names = list(res["results"])
        x = range(len(names))
        for off, key, color in ((-0.2, "h1_accuracy", "tab:blue"), (0.2, "h2_accuracy", "tab:orange")):
            vals = [res["results"][n][key] for n in names]
            errs = [res["results"][n][key + "_std"] for n in names]
            ax.bar([i + off for i in x], vals, 0.4, yerr=errs, color=color, label=key.split("_")[0])
        ax.set_xticks(list(x), names, rotation=20)
        ax.set_ylim(0, 1)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_title(res["probe"], fontsize=9)
    axes[0][0].set_ylabel("h-accuracy")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
