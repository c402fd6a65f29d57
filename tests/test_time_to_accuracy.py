"""benchmarks/time_to_accuracy.py --extend: a sweep grows only under the protocol its runs ran under."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402


def test_a_results_file_without_a_protocol_reads_it_from_its_command_over_the_old_defaults():
    got = tta.legacy_protocol("python benchmarks/time_to_accuracy.py --threshold 0.9 --dtype auto --device cpu "
                              "--tasktune-lrs 1e-2,3e-2")
    assert got == {"threshold": 0.9, "max_steps": 300, "eval_every": 25, "dtype": "auto", "device": "cpu",
                   "dev_n": 0}
    assert tta.legacy_protocol("x --max-steps 50 --eval-every 5")["max_steps"] == 50


def test_the_published_sweep_names_its_protocol_and_a_commit_per_run():
    data = json.loads((ROOT / "docs" / "results" / "time_to_accuracy.json").read_text())
    assert set(data["protocol"]) == set(tta.PROTOCOL_KEYS) and data["protocol"]["dev_n"] == 0
    assert all(r.get("commit") for r in data["runs"]) and data["planned_runs"] == len(data["runs"])
