"""Where a number came from: the CPU, the commit, the library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path


def _fields(cpuinfo: str) -> dict[str, str]:
    """Each /proc/cpuinfo key's first value (the first processor's, on x86)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


@lru_cache(maxsize=1)
def cpu_fields() -> dict[str, str]:
    """/proc/cpuinfo's fields, read once (empty where there is none)."""
    try:
        return _fields(Path("/proc/cpuinfo").read_text())
    except OSError:
        return {}


def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and instruction flags from /proc/cpuinfo (empty where there is none)."""
    fields = cpu_fields()
    return fields.get("model name", ""), frozenset(fields.get("flags", "").split())


def cpu_isa(flags: set[str] | frozenset[str]) -> str:
    """The widest matrix instructions a CPU has: what decides its bf16 speed (AMX, AVX-512 BF16 or neither)."""
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                       ("avx2", "AVX2")):
        if flag in flags:
            return name
    return ""


# (vendor, family) -> core, and (vendor, family, model) -> core where a family spans several cores.
# An AMD family 25 core with AVX-512 is a Zen 4 (Zen 3 has none).
_CORES = {("AuthenticAMD", 23): "Zen 2", ("AuthenticAMD", 26): "Zen 5",
          ("GenuineIntel", 6, 85): "Skylake/Cascade Lake", ("GenuineIntel", 6, 106): "Ice Lake",
          ("GenuineIntel", 6, 143): "Sapphire Rapids", ("GenuineIntel", 6, 207): "Emerald Rapids",
          ("GenuineIntel", 6, 173): "Granite Rapids", ("GenuineIntel", 6, 174): "Granite Rapids"}


def cpu_core(cpuinfo: str | None = None) -> str:
    """The CPU's core design, from /proc/cpuinfo's vendor, family and model (or `cpuinfo`'s text):
    "Zen 4", "Sapphire Rapids", ...; "family F model M" for one not in the table; "" where unknown.

    The flags alone do not tell machines apart either: two "AMD EPYC (AVX-512 BF16)" hosts here ran
    bf16 GEMMs at 420 and 900-960 GFLOP/s (a Zen 4 runs 512-bit instructions as two 256-bit halves)."""
    fields = _fields(cpuinfo) if cpuinfo is not None else cpu_fields()
    vendor, family, model = fields.get("vendor_id", ""), fields.get("cpu family", ""), fields.get("model", "")
    if not (vendor and family.isdigit() and model.isdigit()):
        return ""
    fam, mod = int(family), int(model)
    if vendor == "AuthenticAMD" and fam == 25:
        return "Zen 4" if "avx512f" in fields.get("flags", "").split() else "Zen 3"
    return _CORES.get((vendor, fam, mod)) or _CORES.get((vendor, fam)) or f"family {fam} model {mod}"


def cpu_name() -> str:
    """The CPU's model name, core and widest matrix instructions, else what platform knows.

    The model name alone does not tell machines apart: two "AMD EPYC" hosts here differ 3x in bf16
    speed, one with AVX-512 BF16, one with AVX2 only; two with AVX-512 BF16 differ 2x (cpu_core)."""
    name, flags = cpu_info()
    name = name or platform.processor() or "cpu"
    detail = ", ".join(x for x in (cpu_core(), cpu_isa(flags)) if x)
    return f"{name} ({detail})" if detail else name


def allocator() -> str:
    """The malloc this process runs on: a preloaded tcmalloc or jemalloc (cli/launch.py), else glibc's.

    It moves the step 1.14-1.21x on an AMX Xeon, so a figure names it."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system malloc"
    for name in ("tcmalloc", "jemalloc"):
        if f"lib{name}" in maps:
            return name
    return "glibc malloc"


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, {allocator()}"


# What a run writes into the tree, and prose: changes there do not change what code made a number,
# so they do not make a commit `+dirty` (a benchmark that follows another in one session would
# otherwise read dirty from its predecessor's results file alone).
NOT_CODE = (":(top,exclude)docs/results", ":(top,exclude)docs/img", ":(top,exclude,glob)**/*.md")


def git_commit(where: Path | None = None) -> str:
    """The short commit of the checkout tasktune runs from (or of `where`), `+dirty` where tracked
    code or configs have uncommitted changes (results, plots and prose do not count: NOT_CODE)."""
    pinned = os.environ.get("TASKTUNE_COMMIT")  # a copy of the checkout without its .git (a GPU machine)
    if pinned and where is None:
        return pinned
    here = where or Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", *NOT_CODE],
                               capture_output=True, text=True, timeout=10, cwd=here).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")
