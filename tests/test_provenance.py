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
