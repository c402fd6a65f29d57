"""benchmarks/run_all.sh says it runs every benchmark: every script that publishes a section is in it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_publishing_benchmark_and_experiment_config_is_in_run_all():
    listed = (ROOT / "benchmarks" / "run_all.sh").read_text()
    scripts = [p.name for p in sorted((ROOT / "benchmarks").glob("*.py"))
               if "write_section(" in p.read_text() and p.name != "report.py"]
    assert scripts and len(scripts) > 10
    missing = [s for s in scripts if not re.search(rf'"{re.escape(s)}( |")', listed)]
    assert not missing, f"benchmarks/run_all.sh leaves out {missing}"
    configs = [f"docs/experiments/{p.name}" for p in sorted((ROOT / "docs" / "experiments").glob("*.toml"))]
    assert not [c for c in configs if c not in listed]
