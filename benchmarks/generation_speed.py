"""Batched decoding speed: tasktune's decoder vs PEFT + `generate`, prompt and prefix tuning.

    python benchmarks/generation_speed.py [--sources 16] [--batch 8] [--max-new-tokens 64]

Same machine, model (embedded SmolLM2-135M, the same weights from tasktune's safetensors cache),
backbone dtype, sources (the first E2E valid tables, `Table: {table}\\nText:`), batch of sources,
beams, and 20 virtual tokens (prompt tuning: text-initialised soft prompt; prefix tuning: 20 KV
positions at every layer, no reparametrisation). Every output is exactly --max-new-tokens long on
both sides (end-of-sequence barred until then: `min_new_tokens` in both), so both do the same work
whatever the untrained task parameters would say; tokens/s = sources x new tokens / seconds.
PEFT 0.21.2's generate decodes prompt and prefix tuning wrongly on transformers 5.24 (it misses
the renamed cache keyword and injects the virtual tokens at every step: peft_peer.generate_ready);
the headline rows time it with that fixed (its greedy output then equals a cache-free decode), and
--peft-as-installed adds the rows PEFT gives as installed.
PEFT is set up as a careful user would for decoding on this CPU: the compared backbone dtype and
sdpa attention (PyTorch's fused CPU attention is fast in inference; only its backward is slow, which
is why the training benchmarks give PEFT eager attention), left padding, `model.generate`. Each row
runs in its own process (its own peak RSS); one short decode warms up first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_clock import now, peak_gb  # noqa: E402
from peft_peer import INIT_TEXT, N_VIRTUAL  # noqa: E402

from report import child_result, device_section, table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "e2e"
TEMPLATE = "Table: {table}\nText:{answer}"


def sources(n: int):
    from tasktune.data import load_splits

    seen = list(dict.fromkeys(ex.fields["table"] for ex in load_splits(str(DATA)).dev))
    if len(seen) < n:
        raise SystemExit(f"{DATA}: {len(seen)} valid sources, fewer than --sources {n}")
    return seen[:n]


def decoding_task(dtype: str, device: str, method: str):
    """tasktune's untrained generation task (`method`: prompt | prefix) on the embedded model."""
    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.methods import PrefixTuningConfig, PromptTuningConfig

    bb = load_backbone("smollm2-135m", dtype, device=device)
    if method == "prompt":
        name, mcfg = "prompt-tuning", PromptTuningConfig(prompt_length=N_VIRTUAL, init="text", init_text=INIT_TEXT)
    else:
        name, mcfg = "prefix-tuning", PrefixTuningConfig(prefix_length=N_VIRTUAL, reparam=False)
    return build_task(bb, name, mcfg, TEMPLATE, None, max_length=160, objective="generation", target_field="text")


def source_examples(tables: list[str]):
    from tasktune.data.readers import Example

    return [Example({"table": t, "text": ""}, None, f"e2e:{i}") for i, t in enumerate(tables)]


def run_tasktune(args, tables: list[str]) -> float:
    task = decoding_task(args.dtype, args.device, args.method)
    exs = source_examples(tables)
    task.generate(exs[:2], args.beams, 4, batch_size=args.batch, min_new_tokens=4)  # warm-up
    t = now(args.device)
    texts = task.generate(exs, args.beams, args.max_new_tokens, batch_size=args.batch,
                          min_new_tokens=args.max_new_tokens)
    seconds = now(args.device) - t
    assert len(texts) == len(tables)
    return seconds


def run_peft(args, tables: list[str]) -> float:
    import peft_peer

    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    model, tok = peft_peer.load(args.method, dtype, tuned=False, device=args.device)  # sdpa: see the docstring
    if args.peft_shim:
        peft_peer.generate_ready(model)  # PEFT 0.21.2 misses transformers 5.24's cache keyword (see there)
    model.eval()
    tok.padding_side = "left"
    prompts = [TEMPLATE.split("{answer}")[0].format(table=t) for t in tables]

    def decode(texts: list[str], new: int) -> None:
        enc = tok(texts, return_tensors="pt", padding=True).to(args.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new, min_new_tokens=new, num_beams=args.beams,
                                 do_sample=False, pad_token_id=tok.eos_token_id)
        assert out.shape[1] - enc.input_ids.shape[1] == new, "PEFT decoded a different number of tokens"

    decode(prompts[:2], 4)  # warm-up
    t = now(args.device)
    for k in range(0, len(prompts), args.batch):
        decode(prompts[k:k + args.batch], args.max_new_tokens)
    return now(args.device) - t


def head_on_last_position(device: str, dtype: torch.dtype, rows_list=(8, 40), length: int = 70) -> list[dict]:
    """Seconds of SmolLM2's LM head ([49152, 576]) on the prefill's last position of `rows` rows:
    a strided view of the hidden states, as `logits_to_keep=1` hands it over (generate's prefill;
    a linear layer then copies its weight once per row, pytorch/pytorch#151934), and the same rows
    gathered (contiguous, as tasktune's prefill reads them); the best of 3 calls each."""
    import torch.nn.functional as F

    weight = torch.randn(49152, 576, dtype=dtype, device=device)
    out = []
    for rows in rows_list:
        hidden = torch.randn(rows, length, 576, dtype=dtype, device=device)
        timed = {}
        for name, x in (("strided view", hidden[:, -1:, :]), ("gathered", hidden[:, -1:, :].contiguous())):
            F.linear(x, weight)  # warm-up
            best = float("inf")
            for _ in range(3):
                t = now(device)
                F.linear(x, weight)
                best = min(best, now(device) - t)
            timed[name] = best
        out.append({"rows": rows, "seconds, strided view (logits_to_keep=1)": timed["strided view"],
                    "seconds, gathered rows": timed["gathered"],
                    "ratio": f"{timed['strided view'] / timed['gathered']:.0f}x"})
    return out


def decode_once(args, lib: str, method: str, beams: int, shim: int) -> dict:
    """One row's decode in its own process: its RESULT, or {"error": its last line of stderr}."""
    cmd = [sys.executable, __file__, "--one", lib, "--method", method, "--beams", str(beams),
           "--sources", str(args.sources), "--batch", str(args.batch), "--max-new-tokens",
           str(args.max_new_tokens), "--dtype", args.dtype, "--device", args.device, "--peft-shim", str(shim)]
    try:
        return child_result(cmd)
    except SystemExit as failed:  # its stderr's tail: keep the last line, and go on with the other rows
        err = [x for x in str(failed).strip().splitlines() if x.strip()]
        return {"error": (err[-1] if err else "no RESULT line")[:160]}


def child(args) -> None:
    torch.manual_seed(0)
    tables = sources(args.sources)
    seconds = (run_tasktune if args.one == "tasktune" else run_peft)(args, tables)
    print("RESULT " + json.dumps({"seconds": seconds, "tokens_s": len(tables) * args.max_new_tokens / seconds,
                                  "peak_rss_gb": peak_gb(args.device)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="sources decoded together")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--beams-list", default="1,5", help="beam widths compared (1 = greedy)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cpu", help="cpu | cuda: the same runs on a GPU")
    ap.add_argument("--rounds", type=int, default=3, help="each row this many times, the pair's order alternating")
    ap.add_argument("--no-write", action="store_true", help="print only (a trial run)")
    ap.add_argument("--one", default=None)
    ap.add_argument("--method", default="prompt")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--peft-shim", type=int, default=1)
    ap.add_argument("--peft-as-installed", action="store_true",
                    help="also time PEFT's generate without the cache-keyword fix, greedy only (wrong outputs, "
                         "second rows; its beam search grows the cache by 21 positions a step and takes >10 min)")
    args = ap.parse_args()
    if args.one:
        return child(args)
    runs: dict[tuple, list[dict]] = {}  # (library, method, beams) -> one result per round
    for i in range(args.rounds):
        for method in ("prompt", "prefix"):
            for beams in map(int, args.beams_list.split(",")):
                pair = [("tasktune", 1), ("peft", 1)]
                # PEFT as installed: greedy, first round only (it shows the fault; its beam 5 takes over 10 min)
                broken = [("peft", 0)] if args.peft_as_installed and beams == 1 and i == 0 else []
                for lib, shim in (pair if i % 2 == 0 else pair[::-1]) + broken:
                    name = "tasktune" if lib == "tasktune" else \
                        "PEFT + generate" + ("" if shim else " as installed (wrong outputs)")
                    r = decode_once(args, lib, method, beams, shim)
                    runs.setdefault((name, method, beams), []).append(r)
                    print(i, name, method, beams, r, flush=True)
    rows, ratios = [], {}
    for (name, method, beams), results in runs.items():
        ok = [r for r in results if "error" not in r]
        row = {"library": name, "method": method, "beams": beams, "rounds": len(ok)}
        if ok:
            row.update({k: statistics.median(r[k] for r in ok) for k in ("seconds", "tokens_s", "peak_rss_gb")})
            row["tokens/s over rounds"] = f"{min(r['tokens_s'] for r in ok):.1f}-{max(r['tokens_s'] for r in ok):.1f}"
        if len(ok) < len(results):
            row["error"] = next(r["error"] for r in results if "error" in r)
        rows.append(row)
    by = {(r["library"], r["method"], r["beams"]): r for r in rows if r.get("rounds")}
    for (name, method, beams), ours in by.items():
        peer = by.get(("PEFT + generate", method, beams))
        if name != "tasktune" or peer is None:
            continue
        key = f"{method}, {'greedy' if beams == 1 else f'beam {beams}'}"
        pairs = zip(runs[("tasktune", method, beams)], runs[("PEFT + generate", method, beams)], strict=True)
        per_round = [a["tokens_s"] / b["tokens_s"] for a, b in pairs if "error" not in a and "error" not in b]
        ratios[key] = {"tokens/s": ours["tokens_s"] / peer["tokens_s"],
                       "round ratios": f"{min(per_round):.2f}-{max(per_round):.2f}x",
                       "peak RSS": ours["peak_rss_gb"] / peer["peak_rss_gb"]}
    print(ratios)
    # after the rows: a child inherits its parent's peak RSS (ru_maxrss), and the strided head's copies are GBs
    head = head_on_last_position(args.device, torch.bfloat16 if args.dtype == "bfloat16" else torch.float32)
    print(head, flush=True)
    if args.no_write:
        return
    import transformers

    from tasktune.engine.cache_keyword import CACHE

    keyword = ("with transformers 5.24's cache keyword passed under the name PEFT 0.21.2 reads (as installed, "
               "PEFT's generate re-injects the virtual tokens at every step: wrong outputs; "
               "`peft_peer.generate_ready`)" if CACHE == "cache" else
               f"as installed (transformers {transformers.__version__} still names the cache keyword as PEFT "
               "reads it)")
    body = (f"The first {args.sources} E2E valid sources, decoded {args.batch} at a time, exactly "
            f"{args.max_new_tokens} new tokens each (end-of-sequence barred on both sides), backbone "
            f"{args.dtype}, 20 virtual tokens; PEFT + `generate` with sdpa attention and left padding, "
            f"{keyword}. "
            f"tokens/s = sources x new tokens / seconds; each row its own process, {args.rounds} rounds with the "
            "pair's order alternating, medians (PEFT as installed: the first round only).\n\n"
            "**tasktune / PEFT + generate** (ratios of the medians; the rounds' own ratios in brackets):\n\n"
            + "\n".join(f"- {k}: tokens/s **{v['tokens/s']:.2f}x** ({v['round ratios']}), "
                        f"peak RSS **{v['peak RSS']:.2f}x**" for k, v in ratios.items())
            + "\n\n" + table(rows, ["library", "method", "beams", "rounds", "seconds", "tokens_s",
                                     "tokens/s over rounds", "peak_rss_gb", "error"])
            + f"\n\nThe LM head ([49152, 576], {args.dtype}) on the prefill's last position of 70, for the 8 rows of "
            "a greedy batch and the 40 that `generate` makes of 8 sources at beam 5 before its prefill: handed over "
            "as `logits_to_keep=1` slices it (a strided view: the linear layer copies its weight once per row, "
            "pytorch/pytorch#151934) and gathered (tasktune's prefill); best of 3 calls.\n\n"
            + table(head, list(head[0])))
    command = (f"python benchmarks/generation_speed.py --sources {args.sources} --batch {args.batch} "
               f"--max-new-tokens {args.max_new_tokens} --beams-list {args.beams_list} --dtype {args.dtype} "
               f"--rounds {args.rounds}" + (f" --device {args.device}" if args.device != "cpu" else "")
               + (" --peft-as-installed" if args.peft_as_installed else ""))
    name = device_section("generation_speed", args.device)  # a GPU run is its own section
    where = f" on {torch.cuda.get_device_name(args.device)}" if args.device != "cpu" else ""
    write_section(name, f"Batched decoding{where}: tasktune vs PEFT + generate (prompt and prefix tuning)",
                  command, body, {"rows": rows, "ratios": ratios, "head": head},
                  device=args.device)


if __name__ == "__main__":
    main()
