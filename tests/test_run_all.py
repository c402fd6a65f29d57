"""benchmarks/run_all.sh says it runs every benchmark: every script that publishes a section is in it."""

import re
from pathlib import Path

import pytest

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


def test_run_gpu_lists_only_scripts_that_take_a_device():
    """run_gpu.sh adds --device cuda to each entry: every script it names must take --device."""
    listed = (ROOT / "benchmarks" / "run_gpu.sh").read_text()
    scripts = re.findall(r'"(\w+\.py)[ "]', listed)
    assert len(set(scripts)) == 4 and len(scripts) == 5
    for s in scripts:
        assert '"--device"' in (ROOT / "benchmarks" / s).read_text(), s


def test_gpu_runs_publish_their_own_sections(monkeypatch):
    """A GPU run is its own section, named for the GPU, and never overwrites a CPU section."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    assert report.device_section("cost_curves", "cpu") == "cost_curves"
    assert report.isa_section("speed_vs_peft", "cpu")[0].startswith("speed_vs_peft_")
    monkeypatch.setattr(report, "gpu_name", lambda device="cpu": "NVIDIA H200" if str(device) != "cpu" else "")
    assert report.isa_section("speed_vs_peft", "cuda") == ("speed_vs_peft_h200", "NVIDIA H200")
    assert report.device_section("cost_curves", "cuda") == "cost_curves_h200"


@pytest.mark.parametrize("name,flags,core,section", [
    ("Intel(R) Xeon(R) Processor", {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "Sapphire Rapids", "x_amx"),
    ("Intel(R) Xeon(R) Processor", {"avx512f", "avx512_bf16"}, "Emerald Rapids", "x_avx512_bf16_emerald_rapids"),
    ("AMD EPYC 9R14", {"avx512f", "avx512_bf16"}, "Zen 4", "x_avx512_bf16_zen4"),
    ("AMD EPYC", {"avx512f", "avx512_bf16"}, "Zen 5", "x_avx512_bf16"),
])
def test_each_kind_of_matrix_unit_publishes_its_own_section(monkeypatch, name, flags, core, section):
    """A machine whose bf16 speed differs several-fold never overwrites another kind's figures."""
    import tasktune.provenance as prov

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import report

    monkeypatch.setattr(prov, "cpu_info", lambda: (name, frozenset(flags)))
    monkeypatch.setattr(prov, "cpu_core", lambda: core)
    assert report.isa_section("x", "cpu")[0] == section


def test_speed_vs_peft_merges_rounds_into_medians_and_keeps_errors_out(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import speed_vs_peft

    ok = [{"real_tok_s": v, "eval_ex_s": 2 * v, "step_s": [v], "peak_rss_gb": 1.0} for v in (3.0, 1.0, 2.0)]
    row = speed_vs_peft.merged_rounds(ok + [{"error": "killed"}])
    assert row["real_tok_s"] == 2.0 and row["eval_ex_s"] == 4.0 and row["step_s"] == [[3.0], [1.0], [2.0]]
    assert len(row["rounds"]) == 4 and "error" not in row
    assert speed_vs_peft.merged_rounds([{"error": "boom"}]) == {"error": "boom"}
    single = speed_vs_peft.merged_rounds(ok[:1])
    assert single["step_s"] == [3.0] and single["real_tok_s"] == 3.0
