"""Two CPU processes through `accelerate launch` (gloo): the same code, no change."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import save_tiny, toy_rows, write_jsonl


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not on PATH")
def test_two_process_training(tmp_path):
    model = save_tiny("llama", tmp_path / "m")
    write_jsonl(tmp_path / "d" / "train.jsonl", toy_rows(32))
    write_jsonl(tmp_path / "d" / "dev.jsonl", toy_rows(8))
    cmd = ["accelerate", "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "tasktune.cli", "train", "--model", str(model), "--data",
           str(tmp_path / "d"), "--output", str(tmp_path / "out"), "--max-steps", "4", "--batch-size", "4",
           "--eval-every", "2", "--prompt-length", "2", "--dtype", "float32", "--quiet",
           "--template", "review : {text} sentiment :{answer}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summaries and all(s["steps"] == 4 for s in summaries)
    assert (tmp_path / "out" / "weights.safetensors").exists()
