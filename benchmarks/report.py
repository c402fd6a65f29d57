"""Shared by the benchmark scripts: machine facts and writing a section of docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "docs" / "results"


def machine() -> str:
    import transformers

    from tasktune.provenance import allocator, cpu_name

    return (f"{cpu_name()}, {torch.get_num_threads()} threads, {allocator()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, {datetime.date.today().isoformat()}")


def isa_section(base: str) -> tuple[str, str]:
    """(section name, matrix unit) for a benchmark whose figures depend on the kind of matrix unit: one
    section per kind (`base`_amx, `base`_avx512_bf16, ...), since an AMX Xeon and an AVX-512 BF16
    EPYC differ several-fold in bf16 speed and issue 18 sets a target for each."""
    from tasktune.provenance import cpu_info, cpu_isa

    isa = cpu_isa(cpu_info()[1]) or "other"
    return f"{base}_" + isa.lower().replace("-", "").replace(" ", "_"), isa


def child_result(cmd: list[str], env: dict | None = None) -> dict:
    """Run a benchmark child process and read its `RESULT {json}` line; exit with its error if it has none."""
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(line[0][7:])


def write_section(name: str, title: str, command: str, body: str, data: dict | list | None = None,
                  commit: str | None = None, ran_on: str | None = None) -> None:
    """Replace (or append) the section `name` of docs/BENCHMARKS.md; raw numbers go to docs/results.

    `commit`: the checkout the numbers ran on, read when the run started (a benchmark that publishes
    as it goes dirties the tree itself); by default read now. `ran_on`: the machine line of numbers
    kept from an earlier run (by default this machine, now)."""
    where = ran_on or machine()
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEvery figure names the command that reproduces it.\n"
    section = (f"<!-- {name}:start -->\n## {title}\n\nCommand: `{command}`  \nMachine: {where}\n\n"
               f"{body.strip()}\n<!-- {name}:end -->")
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
    if data is not None:
        if isinstance(data, dict):  # the results file names its provenance too (rendered sections read it)
            from tasktune.provenance import git_commit

            data = {**data, "command": command, "commit": commit or git_commit(), "machine": where}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n")


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):  # one line per row: newlines shown as a return sign, pipes escaped
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("\n", " ⏎ ").replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
