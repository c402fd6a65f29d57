"""Where a number came from: the CPU's matrix instructions are named, so two hosts with one model name differ."""

from tasktune.provenance import cpu_isa, cpu_name


def test_cpu_isa_names_the_widest_matrix_instructions():
    assert cpu_isa({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == "AMX"
    assert cpu_isa({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 BF16"
    assert cpu_isa({"avx2", "avx512f"}) == "AVX-512"
    assert cpu_isa({"sse4_2", "avx2"}) == "AVX2"
    assert cpu_isa({"neon"}) == ""


def test_cpu_name_is_one_line():
    name = cpu_name()
    assert name and "\n" not in name


def _git(repo, *args):
    import subprocess

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_commit_is_dirty_for_code_not_for_results_or_prose(tmp_path):
    from tasktune.provenance import git_commit

    for rel in ("src/m.py", "docs/results/r.json", "docs/img/p.png", "docs/BENCHMARKS.md", "docs/experiments/e.toml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("0")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "c")
    where = tmp_path / "src"  # asked from inside a subfolder, as the installed package is
    clean = git_commit(where)
    assert clean and "+dirty" not in clean and clean != "unknown"
    for rel in ("docs/results/r.json", "docs/img/p.png", "docs/BENCHMARKS.md"):
        (tmp_path / rel).write_text("1")
    assert git_commit(where) == clean  # a run's outputs and the docs it regenerates
    (tmp_path / "docs/experiments/e.toml").write_text("1")
    assert git_commit(where) == clean + "+dirty"  # a config changes what runs
    _git(tmp_path, "checkout", "--", "docs/experiments/e.toml")
    (tmp_path / "src/m.py").write_text("1")
    assert git_commit(where) == clean + "+dirty"


def test_cpu_core_tells_apart_hosts_with_the_same_flags():
    from tasktune.provenance import cpu_core

    def info(vendor, family, model, flags="fpu avx2"):
        return (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                f"model name\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\nvendor_id\t: Other\n")

    assert cpu_core(info("AuthenticAMD", 25, 17, "avx2 avx512f avx512_bf16")) == "Zen 4"
    assert cpu_core(info("AuthenticAMD", 25, 1)) == "Zen 3"
    assert cpu_core(info("AuthenticAMD", 26, 2, "avx512f avx512_bf16")) == "Zen 5"
    assert cpu_core(info("GenuineIntel", 6, 143, "amx_bf16")) == "Sapphire Rapids"
    assert cpu_core(info("GenuineIntel", 6, 999)) == "family 6 model 999"
    assert cpu_core("flags : avx2\n") == ""  # no vendor/family/model: unknown, not guessed
