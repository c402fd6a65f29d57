import json

import torch

from tasktune.build import build_task, load_task
from tasktune.data.readers import Example
from tasktune.methods import InContext, InContextConfig
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

TEMPLATE = "review : {text} sentiment :{answer}"


def examples(n=16):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


def test_demos_are_balanced_seeded_and_rendered_with_the_verbalizer():
    cfg = InContext.fit_config(InContextConfig(shots=4), examples(), ["positive", "negative"], seed=0)
    labels = [d["label"] for d in cfg.demos]
    assert sorted(labels) == ["negative", "negative", "positive", "positive"]
    again = InContext.fit_config(InContextConfig(shots=4), examples(), ["positive", "negative"], seed=0)
    assert again.demos == cfg.demos
    bb = tiny_backbone("llama")
    task = build_task(bb, "in-context", cfg, TEMPLATE, ["positive", "negative"],
                      verbalizer={"positive": " great", "negative": " bad"})
    first = cfg.demos[0]
    word = " great" if first["label"] == "positive" else " bad"
    assert task.template.source.startswith("review : " + first["fields"]["text"] + " sentiment :" + word + "\n\n")
    assert task.template.source.endswith(TEMPLATE)


def test_in_context_train_saves_demos_and_reloads(tmp_path):
    bb = tiny_backbone("gpt2")
    data = examples()
    cfg = InContext.fit_config(InContextConfig(shots=4, calibrate=True, instruction="classify {it}"), data,
                               ["positive", "negative"], 0)
    task = build_task(bb, "in-context", cfg, TEMPLATE, ["positive", "negative"])
    summary = train(task, data, data, TrainConfig(), tmp_path, quiet=True)
    assert summary["trainable_parameters"] == 0 and summary["best_dev_score"] is not None
    meta = json.loads((tmp_path / "tasktune.json").read_text())
    assert len(meta["method_config"]["demos"]) == 4 and meta["method_config"]["instruction"] == "classify {it}"
    loaded, _ = load_task(tmp_path, backbone=bb)
    torch.testing.assert_close(loaded.predict_scores(data), task.predict_scores(data))
    assert loaded.log_prior is not None  # calibration was applied


def test_calibration_removes_a_constant_label_bias():
    from tasktune.objectives.calibration import calibrate

    scores = torch.log(torch.tensor([[0.9, 0.1], [0.7, 0.3]]))
    prior = torch.log(torch.tensor([0.8, 0.2]))
    assert calibrate(scores, prior).argmax(-1).tolist() == [0, 1]
