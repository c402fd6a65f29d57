"""Whether bf16 matmuls are faster than fp32 on this CPU: measured once per machine, not read from its flags.

The flags say a CPU can multiply bf16, not that it is fast at it. An Intel Xeon (Emerald Rapids) whose
hypervisor hides AMX lists avx512_bf16, yet ran bf16 GEMMs at 145 GFLOP/s against fp32's 218-265, and a
bf16 prompt-tuning step 1.2x slower than fp32 (docs/BENCHMARKS.md, "What `--dtype auto` picks"). So `--dtype auto` asks
this module, which times one linear layer at a transformer's shape in both dtypes and keeps the answer in
the cache folder, keyed by what decides it (CPU, flags, threads, torch), so the ~0.2 s is paid once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

# a 768-token piece through a 576 -> 1536 projection (SmolLM2's MLP): the shapes a step runs, not 2048^3
SHAPE = (768, 576, 1536)
# bf16 must beat fp32 by this much: its elementwise work (casts, norms) does not speed up with the GEMMs
MARGIN = 1.25
FILE = "matmul_speed.json"


@dataclass(frozen=True)
class MatmulSpeed:
    bf16_s: float  # best of the rounds, one linear call
    fp32_s: float

    @property
    def bf16_speedup(self) -> float:
        return self.fp32_s / self.bf16_s

    @property
    def bf16_wins(self) -> bool:
        return self.bf16_speedup >= MARGIN


def measure(shape: tuple[int, int, int] = SHAPE, rounds: int = 5) -> MatmulSpeed:
    """Best time of one `linear` call in each dtype, the two interleaved so a slow moment hits both."""
    m, k, n = shape
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
    pairs = {torch.bfloat16: (x.bfloat16(), w.bfloat16()), torch.float32: (x, w)}
    best = dict.fromkeys(pairs, float("inf"))
    with torch.no_grad():
        for a, b in pairs.values():  # warm-up: kernel selection, first-touch pages
            torch.nn.functional.linear(a, b)
        for _ in range(rounds):
            for dtype, (a, b) in pairs.items():
                start = time.perf_counter()
                torch.nn.functional.linear(a, b)
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return MatmulSpeed(best[torch.bfloat16], best[torch.float32])


def machine_key() -> str:
    """What decides the answer: the CPU, its matrix flags, the threads and torch's kernels."""
    from tasktune.provenance import cpu_core, cpu_info

    name, flags = cpu_info()
    matrix = sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512f")
    text = "|".join([name, cpu_core(), ",".join(matrix), str(torch.get_num_threads()), torch.__version__, str(SHAPE)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_file() -> Path:
    from tasktune.backbone.gguf_cache import cache_root

    return cache_root() / FILE


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    """Atomically (temporary file + rename); a cache that cannot be written is measured again next time."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


@lru_cache(maxsize=1)
def cpu_matmul_speed() -> MatmulSpeed:
    """This machine's bf16 and fp32 matmul times: from the cache file where it holds this machine's key."""
    path, key = _cache_file(), machine_key()
    data = _read(path)
    entry = data.get(key)
    if isinstance(entry, dict):
        try:
            return MatmulSpeed(float(entry["bf16_s"]), float(entry["fp32_s"]))
        except (KeyError, TypeError, ValueError):
            pass
    speed = measure()
    data[key] = asdict(speed) | {"bf16_speedup": round(speed.bf16_speedup, 3)}
    _write(path, data)
    return speed
