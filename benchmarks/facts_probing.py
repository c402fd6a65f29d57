"""Knowledge probing (LAMA-style) with the embedded model: P@1 on each relation's test split
(subjects hashed mod 5, see tasktune/data/facts.py) for the manual template (zero-shot),
prompt tuning, and P-tuning with each prompt encoder.

    python benchmarks/facts_probing.py [--steps 200] [--relations P19,P106]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task  # noqa: E402
from tasktune.data.facts import (  # noqa: E402
    load_facts,
    majority_object_p_at_1,
    manual_template,
    p_tuning_template,
)
from tasktune.methods import PromptTuningConfig, PTuningConfig, ZeroShotConfig  # noqa: E402
from tasktune.train import TrainConfig, train  # noqa: E402

from report import table, write_section  # noqa: E402

NOTE = (
    'Zero-shot P@1 is 0 on both relations, and this is genuine: the causal LM continues "X was born '
    'in" with a year (its top token on 37 of the first 40 test facts is the bare space that '
    'SmolLM2\'s tokenizer puts before digits) and "X is a" with adjectives ("renowned", "former"). '
    'LAMA\'s prompts were written for masked LMs, which also see the closing "by profession .". Tuned '
    'prompts move the answer slot to the object.'
)
FACTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "facts"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--relations", default="P19,P106")
    args = ap.parse_args()
    bb = load_backbone("smollm2-135m")
    rows = []
    for rel in args.relations.split(","):
        data, relation = load_facts(FACTS / f"{rel}.jsonl")
        runs = [("manual (zero-shot)", "zero-shot", ZeroShotConfig(), manual_template(relation), 0),
                ("prompt tuning", "prompt-tuning", PromptTuningConfig(prompt_length=9, init="sampled-vocab"),
                 manual_template(relation), 3e-2)]
        runs += [(f"p-tuning ({enc})", "p-tuning", PTuningConfig(encoder=enc), p_tuning_template(relation),
                  1e-3 if enc != "identity" else 3e-2) for enc in ("lstm", "mlp", "identity")]
        probe = build_task(bb, "zero-shot", ZeroShotConfig(), manual_template(relation), None, max_length=64)
        majority = majority_object_p_at_1(data.train, data.test, probe.objective)
        scored = [ex for ex in data.test if probe.objective.label_index(ex) >= 0]
        rows.append({"relation": relation, "method": f"majority object of train ('{majority['majority_object']}')",
                     "template": "", "test P@1": majority["majority_object_p_at_1"], "n single-token": len(scored),
                     "excluded multi-token": len(data.test) - len(scored), "trainable": 0, "seconds": 0})
        for name, method, mcfg, template, lr in runs:
            task = build_task(bb, method, mcfg, template, None, max_length=64, seed=0)
            t0 = time.perf_counter()
            if method != "zero-shot":
                cfg = TrainConfig(max_steps=args.steps, batch_size=16, lr=lr, max_length=64, eval_every=50,
                                  save_every=10**9, log_every=50, seed=0)
                with tempfile.TemporaryDirectory() as out:
                    train(task, data.train, data.dev[:300], cfg, out, quiet=True)
            m = task.evaluate(data.test)
            rows.append({"relation": relation, "method": name, "template": task.template.source,
                         "test P@1": m["p_at_1"], "n single-token": m["n"],
                         "excluded multi-token": m["n_multi_token_excluded"],
                         "trainable": task.module.trainable_parameters(), "seconds": round(time.perf_counter() - t0)})
            print(rows[-1], flush=True)
    body = ("P@1 over the whole vocabulary at the answer slot (the top token must be the object's only token), on "
            "each relation's test split (sha1(subject) mod 5 == 4; train = 0..2, dev = 3, best of evaluations every "
            f"50 steps on 300 dev facts kept). {args.steps} steps, batch 16, AdamW with 10% warmup; lr 3e-2 for "
            "prompt tuning and the identity encoder, 1e-3 for LSTM/MLP encoders (PROTOCOLS.md). Objects whose "
            "' '+object is more than one token are excluded from P@1 and counted. The majority-object row always "
            "answers the most common object of the relation's train split, scored on the same test facts. "
            + NOTE + "\n\n" + table(rows, list(rows[0])))
    write_section("facts_probing", "Knowledge probing: P@1 (embedded SmolLM2-135M)",
                  f"python benchmarks/facts_probing.py --steps {args.steps}", body, rows)


if __name__ == "__main__":
    main()
