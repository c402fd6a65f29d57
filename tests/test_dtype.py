"""`--dtype auto` on a CPU: bf16 only where bf16 matmuls measured faster than fp32, the measurement cached."""

from __future__ import annotations

import json

import pytest
import torch

from tasktune.backbone import dtype as dtype_mod
from tasktune.backbone import matmul_speed
from tasktune.backbone.matmul_speed import MARGIN, MatmulSpeed

CPU = torch.device("cpu")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKTUNE_CACHE", str(tmp_path))
    matmul_speed.cpu_matmul_speed.cache_clear()
    yield tmp_path / matmul_speed.FILE
    matmul_speed.cpu_matmul_speed.cache_clear()


def _flags(monkeypatch, *flags):
    monkeypatch.setattr(dtype_mod, "cpu_info", lambda: ("Test CPU", frozenset(flags)))


@pytest.mark.parametrize("bf16_s,expected", [(0.010, torch.float32), (0.010 / MARGIN, torch.bfloat16),
                                             (0.002, torch.bfloat16), (0.0095, torch.float32)])
def test_auto_follows_the_measured_speed(fresh_cache, monkeypatch, bf16_s, expected):
    _flags(monkeypatch, "avx512f", "avx512_bf16")
    monkeypatch.setattr(matmul_speed, "measure", lambda *a, **k: MatmulSpeed(bf16_s=bf16_s, fp32_s=0.010))
    assert dtype_mod.resolve_dtype("auto", CPU) == expected
    assert dtype_mod.resolve_dtype("bfloat16", CPU) == torch.bfloat16  # an explicit choice is never second-guessed


def test_no_bf16_instructions_means_fp32_without_measuring(fresh_cache, monkeypatch):
    _flags(monkeypatch, "avx2", "fma")

    def refuse(*a, **k):
        raise AssertionError("measured on a CPU without bf16 instructions")

    monkeypatch.setattr(matmul_speed, "measure", refuse)
    assert dtype_mod.resolve_dtype("auto", CPU) == torch.float32
    assert not fresh_cache.exists()


def test_measured_once_then_read_from_the_cache(fresh_cache, monkeypatch):
    calls = []

    def fake(*a, **k):
        calls.append(1)
        return MatmulSpeed(bf16_s=0.004, fp32_s=0.010)

    monkeypatch.setattr(matmul_speed, "measure", fake)
    assert matmul_speed.cpu_matmul_speed().bf16_wins
    entry = json.loads(fresh_cache.read_text())[matmul_speed.machine_key()]
    assert entry["bf16_speedup"] == 2.5
    matmul_speed.cpu_matmul_speed.cache_clear()  # a new process
    assert matmul_speed.cpu_matmul_speed() == MatmulSpeed(bf16_s=0.004, fp32_s=0.010)
    assert len(calls) == 1
    # another thread count is another machine as far as the answer goes
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    matmul_speed.cpu_matmul_speed.cache_clear()
    matmul_speed.cpu_matmul_speed()
    assert len(calls) == 2 and len(json.loads(fresh_cache.read_text())) == 2


def test_a_damaged_cache_is_measured_again(fresh_cache, monkeypatch):
    fresh_cache.write_text("{not json")
    monkeypatch.setattr(matmul_speed, "measure", lambda *a, **k: MatmulSpeed(bf16_s=0.02, fp32_s=0.01))
    assert not matmul_speed.cpu_matmul_speed().bf16_wins
    assert json.loads(fresh_cache.read_text())[matmul_speed.machine_key()]["bf16_s"] == 0.02
    fresh_cache.write_text(json.dumps({matmul_speed.machine_key(): {"bf16_s": "x"}}))
    matmul_speed.cpu_matmul_speed.cache_clear()
    assert matmul_speed.cpu_matmul_speed().fp32_s == 0.01


def test_measure_times_both_dtypes():
    speed = matmul_speed.measure(shape=(32, 16, 24), rounds=2)
    assert 0 < speed.bf16_s < 1 and 0 < speed.fp32_s < 1
