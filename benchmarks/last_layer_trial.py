"""The last layer at the read positions (engine/last_layer.py) against the full last layer: the step and evaluation.

    python benchmarks/last_layer_trial.py [--rounds 3]      (writes the "last_layer" section)

env_ab.py's runs (12 SST-2 batches of 16, bf16, then 128 dev sentences) for prompt, prefix and
P-tuning with TASKTUNE_LAST_LAYER=0 (the last layer at every position) and 1 (at the read
positions, the default), alternating round after round, each its own process; with each run's peak
RSS, step 0's gradient cosine and the largest loss difference over the 12 steps (fewer rows in the
last layer's matmuls change bf16 rounding, not the update). The MFU column counts the FLOPs of the
whole model (4 N T), so work skipped shows as a higher rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_clock import gemm_peak  # noqa: E402
from env_ab import ab_rows, env_ab, training_part  # noqa: E402

from report import write_section  # noqa: E402


def main() -> None:
    from tasktune.provenance import git_commit

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    commit = git_commit()
    peak = gemm_peak(torch.bfloat16)
    ab = env_ab("TASKTUNE_LAST_LAYER", (("every position", "0"), ("read positions", "1")), args.rounds)
    rows = ab_rows(ab, ("every position", "read positions"), peak)
    body = training_part("TASKTUNE_LAST_LAYER", "the last layer at every position", args.rounds, ab, peak, rows)
    write_section("last_layer", "The last layer at the read positions only", "python benchmarks/last_layer_trial.py",
                  body, {"rounds": args.rounds, "bf16_gemm_peak_flops": peak, **ab, "rows": rows}, commit=commit)


if __name__ == "__main__":
    main()
