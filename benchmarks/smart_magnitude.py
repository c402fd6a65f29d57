"""How large is SMART's adversarial term at the paper's radius? R_s on one SST-2 batch of 16 vs the
task loss, for radii 1e-5 (the paper's), 1e-3 and 1e-1, in fp32 and in bf16-mixed precision.

    python benchmarks/smart_magnitude.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data import load_splits  # noqa: E402
from tasktune.methods import FineTuningConfig  # noqa: E402
from tasktune.regularizers.smart import Smart, SmartConfig  # noqa: E402

from report import table, write_section  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
TEMPLATE = "Review: {text}\nSentiment:{answer}"


def main() -> None:
    bb = load_backbone("smollm2-135m", dtype="float32")
    data = load_splits(str(DATA))
    rows = []
    for precision in ("fp32", "bf16-mixed"):
        task = build_task(bb, "fine-tuning", FineTuningConfig(precision=precision), TEMPLATE, data.labels,
                          max_length=96)
        batch, labels = task.batch(data.train[:16])
        for eps in (1e-5, 1e-3, 1e-1):
            torch.manual_seed(0)
            reg = Smart(SmartConfig(smart=True, smart_eps=eps, smart_mu=0.0), task.module.trainable())
            score = lambda inp, batch=batch, task=task: task.scores_from_inputs(inp, batch)  # noqa: E731
            with torch.no_grad():
                inputs = reg._embeds(task.module(bb, batch), bb.embed)
                clean = score(inputs)
                ce = task.objective.loss(clean, labels).item()
            with torch.enable_grad():
                rs = reg.adversarial(score, inputs, clean).item()
            rows.append({"precision": precision, "radius eps": eps, "R_s": rs, "task loss": ce,
                         "R_s / loss": rs / ce})
            print(rows[-1], flush=True)
    emb = bb.embeddings.weight
    body = ("One SST-2 training batch (16 sentences), pretrained weights, K=1 ascent step of 1e-3 from noise of "
            "variance 1e-5, l_inf projection to the radius. SmolLM2's input embeddings have a mean absolute "
            f"value of {emb.abs().mean().item():.3g} (bf16 resolves about 3 significant digits, so a change of "
            f"about {emb.abs().mean().item() * 2 ** -8:.1g} per coordinate). At the paper's radius the fp32 term is "
            "about 1e-7 of the task loss: a no-op at this scale. Under bf16 autocast it is bf16 rounding, not the "
            "perturbation, that sets R_s. mt-dnn's public SMART code normalises the perturbation to unit l_inf "
            "norm (eps only guards the division), i.e. a far larger perturbation than the paper's text.\n\n"
            + table(rows, ["precision", "radius eps", "R_s", "task loss", "R_s / loss"]))
    write_section("smart_magnitude", "SMART: size of the adversarial term at the paper's radius",
                  "python benchmarks/smart_magnitude.py", body, rows)


if __name__ == "__main__":
    main()
