"""Decoding batch size: tokens per second and peak RSS of tasktune's decoder at 4-48 sources a batch.

    python benchmarks/decode_batch_trial.py [--sources 48] [--new-tokens 32] [--rounds 2]

`Task.generate(..., batch_size=)` decodes that many sources together (each with its beams), in
batches of sources of similar length. For the first --sources E2E valid tables, prompt tuning
(generation_speed.py's untrained task: speed does not depend on the values), bf16, exactly
--new-tokens each (end-of-sequence barred until then), greedy and beam 5, each size in its own
process (its own peak RSS), the sizes in reverse order every other round; a row is the median over
rounds. One more row per beam width decodes at 8 a batch with the batches as the sources come (each
batch of 8 handed over alone, so not regrouped by length): what length sorting is worth.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import now, peak_gb  # noqa: E402
from generation_speed import decoding_task, source_examples, sources  # noqa: E402

from report import child_result, table, write_section  # noqa: E402

SIZES = {1: (4, 8, 16, 24, 48), 5: (4, 8, 16, 24)}
AS_THEY_COME = "8, as they come"


def child(args) -> None:
    task = decoding_task("bfloat16", "cpu", "prompt")
    exs = source_examples(sources(args.sources))
    task.generate(exs[:2], args.beams, 4, batch_size=2, min_new_tokens=4)  # warm-up
    t = now("cpu")
    if args.size == AS_THEY_COME:
        texts = [x for k in range(0, len(exs), 8)
                 for x in task.generate(exs[k:k + 8], args.beams, args.new_tokens, batch_size=8,
                                        min_new_tokens=args.new_tokens)]
    else:
        texts = task.generate(exs, args.beams, args.new_tokens, batch_size=int(args.size),
                              min_new_tokens=args.new_tokens)
    seconds = now("cpu") - t
    assert len(texts) == len(exs)
    print("RESULT " + json.dumps({"seconds": seconds, "peak_rss_gb": peak_gb("cpu")}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--beams", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--size", default="", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help="print only (a trial run)")
    args = ap.parse_args()
    if args.size:
        return child(args)
    from tasktune.provenance import git_commit

    commit = git_commit()
    cells = [(beams, str(size)) for beams, sizes in SIZES.items() for size in sizes] \
        + [(beams, AS_THEY_COME) for beams in SIZES]
    runs: dict[tuple, list[dict]] = {cell: [] for cell in cells}
    for r in range(args.rounds):
        for beams, size in cells if r % 2 == 0 else cells[::-1]:
            res = child_result([sys.executable, __file__, "--beams", str(beams), "--size", size, "--sources",
                                str(args.sources), "--new-tokens", str(args.new_tokens)])
            runs[(beams, size)].append(res)
            print(r, beams, size, res, flush=True)
    tokens = args.sources * args.new_tokens
    rows = []
    for (beams, size), res in runs.items():
        seconds = [x["seconds"] for x in res]
        rows.append({"decoding": "greedy" if beams == 1 else f"beam {beams}", "sources a batch": size,
                     "rows a step": int(size.split(",")[0]) * beams, "tokens/s": tokens / statistics.median(seconds),
                     "range over rounds": f"{tokens / max(seconds):.1f}-{tokens / min(seconds):.1f}",
                     "peak RSS GB": statistics.median(x["peak_rss_gb"] for x in res)})
    print(table(rows, list(rows[0])))
    if args.no_write:
        return
    body = (f"The first {args.sources} E2E valid sources, prompt tuning (20 virtual tokens, untrained), bf16, "
            f"exactly {args.new_tokens} new tokens each; tokens/s = sources x new tokens / seconds. Each cell its "
            f"own process, {args.rounds} rounds (median; the order reversed every other round). '{AS_THEY_COME}': "
            "batches of 8 in the sources' own order (each handed to `generate` alone), the others grouped by "
            f"source length. Commit {commit}.\n\n" + table(rows, list(rows[0])))
    write_section("decode_batch", "Decoding batch size (E2E sources, embedded SmolLM2-135M)",
                  f"python benchmarks/decode_batch_trial.py --sources {args.sources} --new-tokens {args.new_tokens} "
                  f"--rounds {args.rounds}", body,
                  {"rows": rows, "runs": {f"{b} {s}": v for (b, s), v in runs.items()}}, commit=commit)


if __name__ == "__main__":
    main()
