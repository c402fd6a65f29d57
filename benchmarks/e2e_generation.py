"""Table-to-text with the embedded model: prefix tuning vs prompt tuning vs fine-tuning at the
same budget, BLEU / ROUGE-L with beam 5, and decoding speed greedy vs beam.

    python benchmarks/e2e_generation.py [--steps 150] [--dataset e2e|webnlg] [--seeds 0 1 2]

Each trained method runs once per seed (mean ± std over seeds; zero-shot is deterministic and
runs once). The speed columns are medians over the seeds.

E2E: ../shared/data/e2e (table -> text; low-data: our split of the official dev set).
WebNLG: ../shared/data/webnlg (triples, joined with " ; " -> texts; each reference is a
training pair, references are regrouped per source for evaluation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import FineTuningConfig, PrefixTuningConfig, PromptTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# dataset: (source field, target field, template, prefix init words, prompt init text)
DATASETS = {"e2e": ("table", "text", "Table: {table}\nText:{answer}", "table-to-text:",
                    "Describe the restaurant in one sentence."),
            "webnlg": ("triples", "texts", "Triples: {triples}\nText:{answer}", "triples-to-text:",
                       "Describe the facts in one sentence.")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--tables", type=int, default=0, help="valid sources reported (0: all)")
    ap.add_argument("--select-tables", type=int, default=15, help="train sources held out to select checkpoints")
    ap.add_argument("--dataset", default="e2e", choices=list(DATASETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    from tasktune.provenance import git_commit

    commit = git_commit()  # before the run writes into the tree
    source, target, template, prefix_words, prompt_text = DATASETS[args.dataset]
    data = load_splits(str(DATA / args.dataset), explode=target if args.dataset == "webnlg" else None)
    valid_tables = list(dict.fromkeys(ex.fields[source] for ex in data.dev))
    valid_tables = valid_tables[: args.tables] if args.tables else valid_tables
    valid = [ex for ex in data.dev if ex.fields[source] in set(valid_tables)]
    # checkpoints are selected on whole sources held out of train, never on the valid sources reported
    train_tables = list(dict.fromkeys(ex.fields[source] for ex in data.train))
    held = set(train_tables[-args.select_tables:])
    select = [ex for ex in data.train if ex.fields[source] in held]
    train_rows = [ex for ex in data.train if ex.fields[source] not in held]
    runs = [("zero-shot", ZeroShotConfig(), 0.0, "auto"),
            ("prefix-tuning", PrefixTuningConfig(prefix_length=10, reparam=True,
                                                 prefix_init="text", prefix_init_text=prefix_words), 5e-3, "auto"),
            ("prompt-tuning", PromptTuningConfig(prompt_length=20, init="text", init_text=prompt_text), 3e-2, "auto"),
            ("fine-tuning", FineTuningConfig(), 5e-5, "float32")]
    rows, per_seed = [], []
    for method, mcfg, lr, dtype in runs:
        seeds = [0] if method == "zero-shot" else args.seeds
        done = [run_one(method, mcfg, lr, dtype, seed, template, target, train_rows, select, valid, args.steps)
                for seed in seeds]
        per_seed += done
        rows.append(summarise(method, done))
        print(rows[-1], flush=True)
    body = (f"Train: ../shared/data/{args.dataset}/train.jsonl less {len(held)} held-out sources "
            f"({len(train_rows):,} source-reference pairs); {args.steps} steps, batch 8, seeds "
            f"{', '.join(map(str, args.seeds))} (mean ± std over seeds, sample std; zero-shot runs once: it has "
            "no seed), AdamW, 10% warmup + linear decay, best of evaluations every 50 steps by teacher-forced "
            "NLL on the "
            f"{len(select)} pairs of the held-out train sources (selection never sees a reported source). "
            f"Reported: {len(valid_tables)} valid sources (all of them unless --tables; references grouped per "
            "source), beam 5, "
            "length penalty 1, max 64 new tokens; BLEU with sacrebleu (multi-reference), ROUGE-L with rouge-score. "
            "METEOR / NIST / CIDEr are not computed (no maintained package here without Java or WordNet data). "
            f"Learning rates: prefix 5e-3 (reparametrised, P' initialised from the embeddings of '{prefix_words}'), "
            "prompt 3e-2, fine-tuning 5e-5 (fp32 master weights, bf16 autocast). Greedy speed on 40 sources; "
            "speed columns are medians over the seeds.\n\n"
            + table(rows, [c for c in rows[0] if not c.startswith("bleu_")]) + "\n\n" + gaps(rows))
    title = {"e2e": "E2E table-to-text", "webnlg": "WebNLG triples-to-text"}[args.dataset]
    seeds = " ".join(map(str, args.seeds))
    write_section(f"{args.dataset}_generation", f"{title}: prefix vs prompt vs fine-tuning (embedded SmolLM2-135M)",
                  f"python benchmarks/e2e_generation.py --steps {args.steps} --tables {args.tables} "
                  f"--select-tables {args.select_tables} --dataset {args.dataset} --seeds {seeds}",
                  body, {"rows": rows, "per_seed": per_seed}, commit=commit)


def run_one(method, mcfg, lr, dtype, seed, template, target, train_rows, select, valid, steps) -> dict:
    bb = load_backbone("smollm2-135m", dtype)
    task = build_task(bb, method, mcfg, template, None, max_length=160, objective="generation",
                      target_field=target, seed=seed)
    t0 = time.perf_counter()
    summary = {"tokens_per_second": 0.0}
    size = 0
    if method != "zero-shot":
        cfg = TrainConfig(max_steps=steps, batch_size=8, lr=lr, max_length=160, eval_every=50,
                          save_every=10**9, log_every=50, seed=seed)
        with tempfile.TemporaryDirectory() as out:
            summary = train(task, train_rows, select, cfg, out, quiet=True)
            size = (Path(out) / "weights.safetensors").stat().st_size
    train_s = time.perf_counter() - t0
    beam = task.evaluate_generation(valid, beams=5, max_new_tokens=64)
    greedy = task.evaluate_generation(valid[:40], beams=1, max_new_tokens=64)
    row = {"method": method, "seed": seed, "BLEU": beam["bleu"], "ROUGE-L": beam["rouge_l"],
           "trainable": summary.get("trainable_parameters", 0), "artifact bytes": size, "train s": round(train_s),
           "train real tok/s": summary["tokens_per_second"], "beam5 tok/s": beam["tokens_per_second"],
           "greedy tok/s": greedy["tokens_per_second"], "dtype": str(bb.dtype).split(".")[-1],
           "sample": beam["samples"][0]["output"][:90]}
    print(row, flush=True)
    return row


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def summarise(method: str, done: list[dict]) -> dict:
    """One table row: BLEU / ROUGE-L as mean ± std over the seeds, each seed's BLEU, speeds as medians."""
    med = {k: statistics.median(r[k] for r in done) for k in ("train s", "train real tok/s", "beam5 tok/s",
                                                              "greedy tok/s")}
    return {"method": method, "seeds": len(done), "BLEU": _mean_std([r["BLEU"] for r in done]),
            "BLEU per seed": " / ".join(f"{r['BLEU']:.1f}" for r in done),
            "ROUGE-L": _mean_std([r["ROUGE-L"] for r in done]), "trainable": done[0]["trainable"],
            "artifact bytes": done[0]["artifact bytes"], **{k: round(v, 1) for k, v in med.items()},
            "dtype": done[0]["dtype"], "sample (first seed)": done[0]["sample"],
            "bleu_mean": statistics.mean(r["BLEU"] for r in done),
            "bleu_std": statistics.stdev(r["BLEU"] for r in done) if len(done) > 1 else 0.0}


def gaps(rows: list[dict]) -> str:
    """Each trained method against fine-tuning: the BLEU gap beside the larger of the two stds."""
    ref = next(r for r in rows if r["method"] == "fine-tuning")
    lines = []
    for r in rows:
        if r["method"] in ("fine-tuning", "zero-shot"):
            continue
        gap, spread = r["bleu_mean"] - ref["bleu_mean"], max(r["bleu_std"], ref["bleu_std"])
        verdict = "within the seed spread (noise)" if abs(gap) <= spread else "larger than the seed spread"
        lines.append(f"- {r['method']} − fine-tuning: {gap:+.1f} BLEU; the larger std {spread:.1f}: {verdict}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
