"""Time to accuracy: the wait from starting a command to a task good enough to use.

    python benchmarks/time_to_accuracy.py [--threshold 0.88] [--device cpu] [--dtype auto]
        [--tasktune-lrs 1e-2,3e-2,1e-1] [--peft-prompt-lrs 1e-2,3e-2,1e-1] [--peft-lora-lrs 1e-3,3e-3,1e-2]

PROTOCOLS.md "Time to accuracy": wall seconds from the start of the command (imports and model
load included) to the first evaluation at >= threshold on the whole SST-2 dev set, evaluating
every 25 steps (evaluations count: the user waits for them), batch 16, max length 96, a 300-step
schedule with 10% warmup then linear decay, the `Review: {text}\\nSentiment:{answer}` template,
the run stopped at the threshold. A run that never reaches it reports its whole run as a lower
bound. Every method at each of its learning rates, each run its own process, one at a time.
`--prune` stops a run once its wall clock passes the fastest time to the threshold its method
already has: it can no longer be that method's best, and its row reports the lower bound (put the
rate expected to be fastest first in each list).

tasktune runs as a user runs it: `tasktune train ... --target-score T` with its defaults
(prompt tuning, 20 virtual tokens), the evaluation times read from the wall-clock stamps of the
run's metrics.jsonl. PEFT runs set up as a careful user would on this machine (peft_peer.py:
the same backbone dtype, eager attention on a CPU, loss and evaluation from the label position only),
AdamW (weight decay 1e-5, gradient clipping 1.0, as tasktune), the same schedule; prompt tuning
with 20 text-initialised virtual tokens and LoRA r=8 on q_proj and v_proj.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peft_peer import TEMPLATE  # noqa: E402

from report import ROOT, isa_section, table, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "sst2"


def peft_child(args) -> None:
    """One PEFT run; prints an EVAL line (JSON, with a wall-clock stamp) per evaluation."""
    import peft_peer
    import torch
    from transformers import get_linear_schedule_with_warmup

    from tasktune.backbone.dtype import resolve_dtype
    from tasktune.data import load_splits

    device = torch.device(args.device)
    torch.manual_seed(0)  # LoRA's A matrices are drawn at random: seeded, as `tasktune train` seeds its runs
    model, tok = peft_peer.load(args.one, resolve_dtype(args.dtype, device), True, str(device))
    data = load_splits(str(args.data))
    dev = data.dev[: args.dev_n] if args.dev_n else data.dev
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-5)
    sched = get_linear_schedule_with_warmup(opt, int(0.1 * args.max_steps), args.max_steps)
    gen = torch.Generator().manual_seed(0)
    order: list[int] = []
    for step in range(1, args.max_steps + 1):
        if len(order) < 16:  # reshuffled each epoch
            order += torch.randperm(len(data.train), generator=gen).tolist()
        exs, order = [data.train[i] for i in order[:16]], order[16:]
        model.train()
        peft_peer.loss(model, tok, exs, args.one, True).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % args.eval_every == 0 or step == args.max_steps:
            model.eval()
            acc = peft_peer.accuracy(model, tok, dev, data.labels, args.one)
            print("EVAL " + json.dumps({"step": step, "accuracy": acc, "time": time.time()}), flush=True)
            if acc >= args.threshold:
                return


def tasktune_data(args, work: Path) -> Path:
    """train + the whole dev split (the protocol evaluates on it; --dev-n: its head)."""
    data = work / "data"
    if not data.exists():
        data.mkdir()
        (data / "train.jsonl").symlink_to((args.data / "train.jsonl").resolve())
        dev = (args.data / "dev.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (data / "dev.jsonl").write_text("".join(dev[: args.dev_n] if args.dev_n else dev), encoding="utf-8")
    return data


def run_tasktune(args, lr: float, work: Path, deadline: float = 0) -> tuple[list[dict], float]:
    return run_tasktune_cmd(tasktune_data(args, work), work / f"tasktune-{lr:g}", TEMPLATE, ["--lr", str(lr)],
                            args.threshold, args.max_steps, args.eval_every, args.dtype, args.device,
                            deadline=deadline)


def run_tasktune_cmd(data: Path, out: Path, template: str, options: list[str], threshold: float, max_steps: int,
                     eval_every: int, dtype: str, device: str, cap: int = 0,
                     deadline: float = 0) -> tuple[list[dict], float]:
    """One `tasktune train` run under the protocol, plus `options`; its evaluations as
    {step, accuracy, seconds since the command started}. threshold 0: no early stop; cap: end the
    run after its evaluation at this step (the schedule stays max_steps long); deadline: end it
    after this many wall seconds (0: none)."""
    cmd = [str(Path(sys.executable).parent / "tasktune"), "train", "--data", str(data), "--output", str(out),
           "--template", template, "--max-steps", str(max_steps), "--eval-every", str(eval_every),
           "--batch-size", "16", "--max-length", "96", "--dtype", dtype, "--device", device, "--quiet", *options]
    if threshold:
        cmd += ["--target-score", str(threshold)]
    def evals() -> list[dict]:  # while running, the metrics are in the run's work folder (train/run_folder.py)
        metrics = next((f for f in (out / "metrics.jsonl", out.parent / f".{out.name}.partial" / "metrics.jsonl")
                        if f.is_file()), None)
        if metrics is None:
            return []
        lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip().endswith("}")]
        return [{"step": r["step"], "accuracy": r["dev_accuracy"], "seconds": r["time"] - t0}
                for r in lines if "dev_accuracy" in r]

    t0 = time.time()
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a full pipe would stall the run
        # the allocator this benchmark runs on, as PEFT's child does: no tcmalloc of the launcher's own
        # (run the whole benchmark under LD_PRELOAD to give both sides one)
        env = {**os.environ, "TASKTUNE_MALLOC": "system"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
        while proc.poll() is None:
            if (cap and any(e["step"] >= cap for e in evals())) or (deadline and time.time() - t0 > deadline):
                proc.terminate()
                proc.wait()
                return evals(), time.time() - t0
            time.sleep(1.0)
        total = time.time() - t0
        if proc.returncode:
            err.seek(0)
            raise RuntimeError((err.read().strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return evals(), total


def measure_baselines(args, work: Path) -> dict:
    """The trivial rows on the same dev set: the template with no training (`tasktune zero-shot`,
    the embedded model at the benchmark's dtype) and the most common dev label."""
    data = tasktune_data(args, work)
    cmd = [str(Path(sys.executable).parent / "tasktune"), "zero-shot", "--data", str(data), "--template", TEMPLATE,
           "--max-length", "96", "--dtype", args.dtype, "--device", args.device, "--json"]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TASKTUNE_MALLOC": "system"})
    if done.returncode:
        raise SystemExit("zero-shot baseline: " + (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    from report import machine

    return {"zero_shot_accuracy": metrics["accuracy"], "majority_baseline": metrics["majority_baseline"],
            "n": metrics["n"], "zero_shot_seconds": time.time() - t0, "commit": args.commit,
            "machine": machine(args.device)}


def run_peft(args, method: str, lr: float, deadline: float = 0) -> tuple[list[dict], float]:
    """One PEFT run in its own process; deadline: end it after this many wall seconds (0: none)."""
    cmd = [sys.executable, __file__, "--one", method, "--lr", str(lr), "--data", str(args.data),
           "--threshold", str(args.threshold), "--max-steps", str(args.max_steps), "--eval-every",
           str(args.eval_every), "--dtype", args.dtype, "--device", args.device, "--dev-n", str(args.dev_n)]
    t0 = time.time()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # files: no pipe to fill
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        stopped = False
        while proc.poll() is None:
            if deadline and time.time() - t0 > deadline:
                proc.terminate()
                proc.wait()
                stopped = True
                break
            time.sleep(1.0)
        total = time.time() - t0
        if proc.returncode and not stopped:
            err.seek(0)
            raise RuntimeError((err.read().strip().splitlines() or [f"exit {proc.returncode}"])[-1])
        out.seek(0)
        evals = [json.loads(x[5:]) for x in out.read().splitlines() if x.startswith("EVAL ")]
    return [{"step": e["step"], "accuracy": e["accuracy"], "seconds": e["time"] - t0} for e in evals], total


def plot(runs: list[dict], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in runs:
        if r.get("curve"):
            ax.plot([e["seconds"] for e in r["curve"]], [100 * e["accuracy"] for e in r["curve"]], marker="o",
                    markersize=3, label=f"{r['method']} lr {r['lr']:g}")
    ax.axhline(100 * threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("wall seconds since the command started")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threshold", type=float, default=0.88)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--dev-n", type=int, default=0, help="evaluate on the first N dev rows (0: all; the protocol)")
    ap.add_argument("--tasktune-lrs", default="1e-2,3e-2,1e-1")
    ap.add_argument("--peft-prompt-lrs", default="1e-2,3e-2,1e-1")
    ap.add_argument("--peft-lora-lrs", default="1e-3,3e-3,1e-2")
    ap.add_argument("--no-write", action="store_true", help="print, write no docs or results (trials)")
    ap.add_argument("--prune", action="store_true",
                    help="stop a run once it is slower than its method's fastest run so far (a lower bound)")
    ap.add_argument("--extend", action="store_true",
                    help="keep the runs of docs/results/time_to_accuracy_<isa>.json (same protocol) and add these")
    ap.add_argument("--baselines-only", action="store_true",
                    help="keep the published runs (same protocol) and measure again only the zero-shot and "
                    "majority rows")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--lr", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return peft_child(args)
    if args.dev_n and not args.no_write:
        sys.exit("--dev-n changes the protocol: trials only, with --no-write")
    plan = [("tasktune prompt tuning", float(x)) for x in args.tasktune_lrs.split(",") if x] + \
           [("PEFT LoRA r=8 q,v", float(x)) for x in args.peft_lora_lrs.split(",") if x] + \
           [("PEFT prompt tuning", float(x)) for x in args.peft_prompt_lrs.split(",") if x]
    from tasktune.provenance import git_commit

    args.commit = git_commit()
    runs = earlier_runs(args) if args.extend or args.baselines_only else []
    plan = [] if args.baselines_only else \
        [(m, lr) for m, lr in plan if not any(r["method"] == m and r["lr"] == lr for r in runs)]
    planned = len(runs) + len(plan)
    work = Path(tempfile.mkdtemp(prefix="tta-"))
    try:
        args.baselines = measure_baselines(args, work)
        print(args.baselines, flush=True)
        publish(args, runs, planned)
        for method, lr in plan:
            row = {"method": method, "lr": lr, "commit": args.commit, "machine": args.baselines["machine"]}
            fastest = min((r for r in runs if r["method"] == method and r.get("seconds_to_threshold") is not None),
                          key=lambda r: r["seconds_to_threshold"], default=None) if args.prune else None
            deadline = fastest["seconds_to_threshold"] if fastest else 0
            try:
                if method.startswith("tasktune"):
                    curve, total = run_tasktune(args, lr, work, deadline)
                else:
                    curve, total = run_peft(args, "prompt" if "prompt" in method else "lora", lr, deadline)
                hit = next((e for e in curve if e["accuracy"] >= args.threshold), None)
                row.update(curve=curve, run_seconds=total,
                           best_accuracy=max((e["accuracy"] for e in curve), default=None),
                           reached_step=hit["step"] if hit else None,
                           seconds_to_threshold=hit["seconds"] if hit else None)
                if deadline and hit is None and total >= deadline:
                    row["pruned"] = f"stopped at {deadline:.0f} s: lr {fastest['lr']:g} was there first"
            except RuntimeError as e:
                row["error"] = str(e)[:160]
            runs.append(row)
            print({k: v for k, v in row.items() if k != "curve"}, flush=True)
            publish(args, runs, planned)  # after every run: a stopped benchmark keeps what it measured
    finally:
        shutil.rmtree(work, ignore_errors=True)


PROTOCOL_KEYS = ("threshold", "max_steps", "eval_every", "dtype", "device", "dev_n")


def earlier_runs(args) -> list[dict]:
    """The published runs, when they ran under this protocol (--extend adds rates to a sweep)."""
    path = ROOT / "docs" / "results" / f"{isa_section('time_to_accuracy', args.device)[0]}.json"
    if not path.is_file():
        sys.exit(f"--extend: no earlier results at {path}")
    data = json.loads(path.read_text())
    old = data.get("protocol", {})
    differs = [k for k in PROTOCOL_KEYS if old.get(k) != getattr(args, k)]
    if differs:
        sys.exit(f"--extend: {path} ran under another protocol ({', '.join(differs)} differ)")
    return [{**r, "commit": r.get("commit", data.get("commit")), "machine": r.get("machine", data.get("machine"))}
            for r in data["runs"]]


def publish(args, runs: list[dict], planned: int) -> None:
    """Render the runs so far into BENCHMARKS.md and docs/results (or print them, with --no-write)."""

    def best(prefix: str) -> dict | None:
        hits = [r for r in runs if r["method"].startswith(prefix) and r.get("seconds_to_threshold") is not None]
        return min(hits, key=lambda r: r["seconds_to_threshold"]) if hits else None

    name, isa = isa_section("time_to_accuracy", args.device)  # one section (and plot) per matrix unit / GPU
    ours = best("tasktune")
    peers = [b for b in (best("PEFT prompt"), best("PEFT LoRA")) if b is not None]
    fastest_peer = min(peers, key=lambda r: r["seconds_to_threshold"]) if peers else None
    ratio = (fastest_peer["seconds_to_threshold"] / ours["seconds_to_threshold"]) if ours and fastest_peer else None
    rows = [{"method": r["method"], "lr": r["lr"],
             "seconds to threshold": (f"{r['seconds_to_threshold']:.0f}" if r.get("seconds_to_threshold") is not None
                                      else (f"> {r['run_seconds']:.0f}" if "run_seconds" in r else "")),
             "step": r.get("reached_step") or "",
             "best dev accuracy": "" if r.get("best_accuracy") is None else r["best_accuracy"],
             "note": r.get("error") or r.get("pruned", "")} for r in runs]
    for r in rows:
        if isinstance(r["best dev accuracy"], float):
            r["best dev accuracy"] = f"{r['best dev accuracy']:.3f}"
    lead = (f"tasktune's fastest run reaches {args.threshold:.2f} **{ratio:.1f}x** sooner than the fastest PEFT run "
            f"({ours['method']} lr {ours['lr']:g}: {ours['seconds_to_threshold']:.0f} s; {fastest_peer['method']} lr "
            f"{fastest_peer['lr']:g}: {fastest_peer['seconds_to_threshold']:.0f} s)." if ratio else
            "No ratio: a side never reached the threshold (its rows give the lower bounds).")
    done = "" if len(runs) == planned else f"**Partial: {len(runs)} of {planned} planned runs finished.** "
    b = args.baselines
    trivial = (f"Trivial baselines on the same {b['n']} dev sentences: the most common label "
               f"{b['majority_baseline']:.3f}, the template with no training (`tasktune zero-shot`) "
               f"{b['zero_shot_accuracy']:.3f}")
    machines = list(dict.fromkeys(r["machine"] for r in runs if r.get("machine")))
    ran_on = machines[0] if len(machines) == 1 else None  # runs kept from an earlier session name where they ran
    trivial += (f" (commit {b['commit']}; measured on {b['machine']})." if ran_on and ran_on != b["machine"]
                else f" (commit {b['commit']}).")
    if len(machines) > 1:
        trivial += " The runs ran on: " + "; ".join(machines) + "."
    body = (f"{done}Threshold {args.threshold:.2f} on the "
            f"{'whole' if not args.dev_n else f'first {args.dev_n} rows of'} "
            f"SST-2 dev, evaluations every {args.eval_every} steps counted, a {args.max_steps}-step schedule; "
            f"device {args.device}, backbone dtype {args.dtype}.\n\n{lead} {trivial}\n\n"
            + table(rows, ["method", "lr", "seconds to threshold", "step", "best dev accuracy", "note"])
            + f"\n\n![dev accuracy against wall seconds](img/{name}.png)")
    if args.no_write:
        print(body)
        return
    plot(runs, args.threshold, ROOT / "docs" / "img" / f"{name}.png")
    shown = dict(vars(args))  # the rates of every run shown (an --extend run adds to earlier ones)
    for key, method in (("tasktune_lrs", "tasktune prompt tuning"), ("peft_prompt_lrs", "PEFT prompt tuning"),
                        ("peft_lora_lrs", "PEFT LoRA r=8 q,v")):
        shown[key] = ",".join(f"{r['lr']:g}" for r in runs if r["method"] == method) or '""'
    command = ("python benchmarks/time_to_accuracy.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in shown.items()
        if k in ("threshold", "max_steps", "eval_every", "device", "dtype", "tasktune_lrs", "peft_prompt_lrs",
                 "peft_lora_lrs")) + (" --prune" if args.prune else ""))
    write_section(name, f"Time to accuracy on {isa}: tasktune vs PEFT (SST-2, embedded SmolLM2-135M)", command,
                  body, {"runs": runs, "ratio_fastest_peer_over_tasktune": ratio, "threshold": args.threshold,
                         "planned_runs": planned, "baselines": args.baselines,
                         "protocol": {k: getattr(args, k) for k in PROTOCOL_KEYS}},
                  commit=", ".join(dict.fromkeys(r.get("commit", args.commit) for r in runs)), ran_on=ran_on,
                  device=args.device)


if __name__ == "__main__":
    main()
