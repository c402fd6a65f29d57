"""Shared by the benchmark scripts: machine facts and writing a section of docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "docs" / "results"


def gpu_name(device: torch.device | str = "cpu") -> str:
    """The GPU a benchmark runs on ("NVIDIA H200"), or "" for a CPU run."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else ""


def machine(device: torch.device | str = "cpu") -> str:
    """Where a figure was measured: the CPU (threads, malloc) or the GPU and its host, the versions, the date."""
    import transformers

    from tasktune.provenance import allocator, cpu_name

    gpu = gpu_name(device)
    if gpu:
        props = torch.cuda.get_device_properties(torch.device(device))
        where = (f"{gpu} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}), host {cpu_name()} "
                 f"{os.cpu_count()} cores")
    else:
        where = f"{cpu_name()}, {torch.get_num_threads()} threads, {allocator()}"
    try:
        import peft

        versions = f", peft {peft.__version__}"
    except ImportError:
        versions = ""
    return (f"{where}, torch {torch.__version__}, transformers {transformers.__version__}{versions}, "
            f"{datetime.date.today().isoformat()}")


def _slug(name: str) -> str:
    """A section-name piece: "H200 NVL" -> "h200_nvl"."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def isa_section(base: str, device: torch.device | str = "cpu") -> tuple[str, str]:
    """(section name, matrix unit) for a benchmark whose figures depend on the kind of matrix unit: one
    section per kind (`base`_amx, `base`_avx512_bf16, ...), since an AMX Xeon and an AVX-512 BF16
    EPYC differ several-fold in bf16 speed and issue 18 sets a target for each. A Zen 4 is its own
    kind (`base`_avx512_bf16_zen4): it runs AVX-512 as two 256-bit halves, half the bf16 GEMM rate of
    the full-width EPYC the `base`_avx512_bf16 sections ran on; so is an Intel core with AVX-512 BF16 and
    no AMX (`base`_avx512_bf16_emerald_rapids), whose bf16 runs slower than its fp32. A GPU run is its own section too
    (`base`_h200: the GPU's name)."""
    from tasktune.provenance import cpu_core, cpu_info, cpu_isa

    gpu = gpu_name(device)
    if gpu:
        return f"{base}_{_slug(gpu.lower().removeprefix('nvidia '))}", gpu
    name, flags = cpu_info()
    isa = cpu_isa(flags) or "other"
    slug = isa.lower().replace("-", "").replace(" ", "_")
    core = cpu_core()
    if core == "Zen 4":
        return f"{base}_{slug}_zen4", f"{isa} (Zen 4)"
    if isa == "AVX-512 BF16" and "Intel" in name and core:
        # an Intel Xeon whose AMX the hypervisor hides (Emerald Rapids here: bf16 GEMMs at 145 GFLOP/s, slower
        # than its fp32), nothing like the full-width EPYC of the plain _avx512_bf16 sections
        return f"{base}_{slug}_{_slug(core)}", f"{isa} ({core}, no AMX)"
    return f"{base}_{slug}", isa


def device_section(base: str, device: torch.device | str = "cpu") -> str:
    """The section of a benchmark published once for the CPU (`base`) and once per GPU (`base`_h200)."""
    return isa_section(base, device)[0] if gpu_name(device) else base


def child_result(cmd: list[str], env: dict | None = None) -> dict:
    """Run a benchmark child process and read its `RESULT {json}` line; exit with its error if it has none."""
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(line[0][7:])


def write_section(name: str, title: str, command: str, body: str, data: dict | list | None = None,
                  commit: str | None = None, ran_on: str | None = None, device: torch.device | str = "cpu") -> None:
    """Replace (or append) the section `name` of docs/BENCHMARKS.md; raw numbers go to docs/results.

    `commit`: the checkout the numbers ran on, read when the run started (a benchmark that publishes
    as it goes dirties the tree itself); by default read now. `ran_on`: the machine line of numbers
    kept from an earlier run (by default this machine, now; `device`: the GPU it ran on, if any)."""
    where = ran_on or machine(device)
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
