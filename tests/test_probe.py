import json

import pytest

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.icl.features import make_feature
from tasktune.icl.probe import ProbeConfig, run_probe
from tasktune.icl.probe_set import build_from_examples, load_released

from conftest import SHARED_DATA, tiny_backbone, toy_rows


def rows():
    out = []
    for i, r in enumerate(toy_rows(40)):
        text = r["text"] + (" really really really" if i % 4 < 2 else "")
        out.append(Example({"text": text}, r["label"], f"toy:{i}"))
    return out


def test_features():
    pool = rows()
    length = make_feature("length", pool)
    assert length(Example({"text": "a b c d e f g h i j"})) == 1 and length(Example({"text": "a"})) == 0
    assert make_feature("punctuation", pool)(Example({"text": "wow!"})) == 1
    assert make_feature("negation", pool)(Example({"text": "it is not good"})) == 1
    assert make_feature("contains:plot", pool)(Example({"text": "the plot"})) == 1
    assert make_feature("label=positive", pool)(Example({"text": "x"}, "positive")) == 1
    with pytest.raises(TasktuneError):
        make_feature("colour", pool)


def test_probe_h_accuracies_are_complementary_on_disambiguating_cells():
    pool = rows()
    ps = build_from_examples("toy", pool, make_feature("label=positive", pool), make_feature("length", pool))
    for cell, examples in ps.cells.items():
        h1, h2 = ps.h(cell)
        assert all(ex.label == str(h1) for ex in examples)
        assert all((len(ex.fields["text"].split()) > 4) == bool(h2) for ex in examples)
    cfg = ProbeConfig(template="review : {text} sentiment :{answer}", words=(" bad", " good"), shots=4, disambig=2,
                      seeds=2, n_test=5, n_agree=3, instruction="classify sentiment")
    res = run_probe(tiny_backbone("llama"), ps, cfg, ("none", "disambig", "instruction", "verbalizer"))
    for r in res["results"].values():
        assert r["h1_accuracy"] + r["h2_accuracy"] == pytest.approx(1.0)
        assert len(r["seeds"]) == 2


def test_released_format_is_validated(tmp_path):
    bad = {c: [] for c in ("demos_1_1", "demos_0_0", "testset_1_1", "testset_0_0", "testset_1_0")}
    (tmp_path / "p.json").write_text(json.dumps(bad))
    with pytest.raises(TasktuneError, match="testset_0_1"):
        load_released(tmp_path / "p.json")


@pytest.mark.skipif(not (SHARED_DATA / "ambig").is_dir(), reason="shared data absent")
def test_released_boolq_sets_load():
    ps = load_released(SHARED_DATA / "ambig" / "boolq_answer_length.json")
    assert len(ps.cells["testset_1_0"]) == 400 and ps.cells["testset_1_0"][0].label == "1"
