"""benchmarks/time_to_accuracy.py --extend: a sweep grows only under the protocol its runs ran under."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402

SWEEPS = sorted((ROOT / "docs" / "results").glob("time_to_accuracy_*.json"))


def published() -> list[dict]:
    """Every published sweep: one per kind of matrix unit (AMX, AVX-512 BF16)."""
    assert SWEEPS
    return [json.loads(p.read_text()) for p in SWEEPS]


def test_the_published_sweep_names_its_protocol_and_a_commit_per_run():
    for data in published():
        assert set(data["protocol"]) == set(tta.PROTOCOL_KEYS) and data["protocol"]["dev_n"] == 0
        assert all(r.get("commit") for r in data["runs"]) and data["planned_runs"] == len(data["runs"])


def test_the_published_sweep_has_its_trivial_baselines_on_the_same_dev_set():
    for data in published():
        b = data["baselines"]
        assert b["n"] == 872 and 0.5 <= b["majority_baseline"] < 0.6  # SST-2 dev is about balanced
        assert 0.0 < b["zero_shot_accuracy"] < data["threshold"] and b["commit"] and b["machine"]
