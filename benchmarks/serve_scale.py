"""Serving many tasks on one backbone: mixed batches against one task per forward pass.

1, 10, 100 and 1,000 tasks of one kind on the embedded model (soft prompts of 20 tokens;
prefixes of 10 tokens; prompt-tuning generation tasks, greedy, 16 new tokens), each written as
an artifact and loaded from a task root the way `tasktune serve --task-root` loads it. Traffic:
--requests single-input requests, each for a task drawn uniformly at random, SST-2 dev sentences
(E2E meaning representations for generation), taken in arrival order in batches of --batch (the
server's --max-batch), under saturation (the queue never empties). The two modes run the same
batches, alternating batch by batch, so drift on a noisy host hits both alike.

- mixed: the server's own batch step (`TaskServer.run_batch`): every task's rows in one forward
  pass (one decode for generation);
- task at a time: the same batches, but each task's rows as their own forward pass, which is
  what one adapter per forward (PEFT's prompt learning) forces; each group runs tasktune's own
  per-task path (length-sorted, shared-prefix reuse), so the baseline is not handicapped.

Reported: requests per second; latency within a batch (from the batch's start until the
request's result: all of a mixed batch at once, groups one after another for task at a time),
p50 / p99; RSS per added task, in a fresh process (after the backbone, one task and a warm-up;
gc'd and malloc_trim'd), against the artifact's bytes on disk (at 1 task no task is added: 0).
Task values do not matter for speed: tasks are freshly initialised, not trained.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEMPLATE = "Review: {text}\nSentiment:{answer}"
GEN_TEMPLATE = "Table: {table}\nText:{answer}"
KINDS = ("prompt", "prefix", "generation")


def inputs(kind: str, n: int) -> list[dict]:
    if kind == "generation":
        path, field = DATA / "e2e" / "valid.jsonl", "table"
    else:
        path, field = DATA / "sst2" / "dev.jsonl", "text"
    rows = [json.loads(line)[field] for line in path.read_text().splitlines()[: 4 * n]]
    return [{field: r} for r in rows]


def make_task(bb, kind: str, seed: int):
    from tasktune.build import build_task
    from tasktune.methods import PrefixTuningConfig, PromptTuningConfig

    if kind == "prompt":
        return build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), TEMPLATE,
                          ["positive", "negative"], seed=seed, max_length=96)
    if kind == "prefix":
        return build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=10, reparam=False), TEMPLATE,
                          ["positive", "negative"], seed=seed, max_length=96)
    return build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=20), GEN_TEMPLATE, None,
                      objective="generation", seed=seed, max_length=160)


def rss() -> int:
    """Resident bytes after a collection and after handing freed heap back to the OS (malloc_trim),
    so later growth is new allocations, not reused free memory."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return psutil.Process().memory_info().rss


def memory_probe(root: Path, n_tasks: int) -> float:
    """RSS per task held, measured in a fresh process (the one that wrote the artifacts reuses freed
    memory): backbone loaded and one task loaded and run first, then the other n - 1 loaded."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--memory-probe", str(root), "--probe-n", str(n_tasks)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_per_task_bytes"]


def probe(root: Path, n_tasks: int) -> None:
    from tasktune.data.readers import Example
    from tasktune.serve.registry import TaskRegistry

    registry = TaskRegistry(None, root, n_tasks)
    from tasktune.build import load_task

    first, _ = load_task(root / "t0")
    registry.pin("t0", first)
    field = first.template.fields[0]
    first.predict([Example({field: "a warm-up input"})], beams=1, max_new_tokens=2)
    before = rss()
    for i in range(1, n_tasks):
        registry.load(f"t{i}")
    after = rss()
    print(json.dumps({"rss_per_task_bytes": (after - before) / max(1, n_tasks - 1)}))


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def task_at_a_time(batch, max_new: int) -> list[float]:
    """Each task's rows as their own pass; the finish time of every input, from the batch's start."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(batch):
        groups.setdefault(p.names[0], []).append(i)
    done, t0 = [0.0] * len(batch), time.perf_counter()
    for idx in groups.values():
        task = batch[idx[0]].tasks[0]
        task.predict([batch[i].example for i in idx], beams=1, max_new_tokens=max_new)
        for i in idx:
            done[i] = time.perf_counter() - t0
    return done


def run(kind: str, n_tasks: int, args, bb) -> dict:
    from tasktune.artifact import save_task
    from tasktune.data.readers import Example
    from tasktune.serve.app import TaskServer, _Pending
    from tasktune.serve.limits import ServeLimits

    root = Path(tempfile.mkdtemp(prefix=f"serve-scale-{kind}-"))
    try:
        for i in range(n_tasks):
            save_task(make_task(bb, kind, i), root / f"t{i}")
        artifact = statistics.mean(sum(f.stat().st_size for f in (root / f"t{i}").iterdir()) for i in range(n_tasks))
        per_task = memory_probe(root, n_tasks)
        server = TaskServer([], backbone=bb, task_root=root, limits=ServeLimits(max_tasks=n_tasks))
        for i in range(n_tasks):
            server.registry.load(f"t{i}")
        rng = random.Random(0)
        requests = args.requests if kind != "generation" else args.gen_requests
        pool = inputs(kind, requests)
        names = [f"t{rng.randrange(n_tasks)}" for _ in range(requests)]
        pending = [_Pending((name,), (server.registry.get(name),), Example(pool[i % len(pool)], None, "bench"), None,
                            args.max_new_tokens) for i, name in enumerate(names)]
        batches = [pending[s : s + args.batch] for s in range(0, len(pending), args.batch)]
        server.run_batch(batches[0])  # warm-up: first-call costs out of both timings
        task_at_a_time(batches[0], args.max_new_tokens)
        out = {"kind": kind, "tasks": n_tasks, "requests": requests, "artifact_bytes": artifact,
               "rss_per_task_bytes": per_task}
        lat = {"mixed": [], "task_at_a_time": []}
        wall = {"mixed": 0.0, "task_at_a_time": 0.0}
        for k, b in enumerate(batches):  # the two modes alternate batch by batch: drift hits both alike
            for mode in (("mixed", "task_at_a_time") if k % 2 == 0 else ("task_at_a_time", "mixed")):
                s = time.perf_counter()
                if mode == "mixed":
                    server.run_batch(b)
                    lat[mode] += [time.perf_counter() - s] * len(b)
                else:
                    lat[mode] += task_at_a_time(b, args.max_new_tokens)
                wall[mode] += time.perf_counter() - s
        for mode in lat:
            out[mode] = {"requests_per_s": requests / wall[mode], "p50_s": percentile(lat[mode], 0.5),
                         "p99_s": percentile(lat[mode], 0.99), "seconds": wall[mode]}
        out["speedup"] = out["mixed"]["requests_per_s"] / out["task_at_a_time"]["requests_per_s"]
        out["distinct_tasks_per_batch"] = statistics.mean(len({p.names[0] for p in b}) for b in batches)
        print(json.dumps(out), flush=True)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="1,10,100,1000")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--gen-requests", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--probe-n", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        return probe(Path(args.memory_probe), args.probe_n)
    from tasktune.backbone import load_backbone
    from tasktune.provenance import git_commit

    torch.manual_seed(0)
    bb = load_backbone("smollm2-135m")
    rows = [run(kind, int(n), args, bb) for kind in args.kinds.split(",") for n in args.tasks.split(",")]
    command = "python benchmarks/serve_scale.py " + " ".join(sys.argv[1:])
    data = {"rows": rows, "dtype": str(bb.dtype).split(".")[-1], "batch": args.batch, "commit": git_commit()}
    from report import machine

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_scale.json").write_text(json.dumps({**data, "command": command, "machine": machine()},
                                                         indent=1) + "\n")
    from tasktune.experiments.docs import result_section

    write_section("serve_scale", "Serving many tasks: mixed batches against one task per forward", command,
                  result_section(RESULTS, "serve_scale"))


if __name__ == "__main__":
    main()
