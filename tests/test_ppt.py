import json

import pytest
import torch
from typer.testing import CliRunner

from tasktune import TasktuneError
from tasktune.cli.app import app
from tasktune.ppt.corpus import plain_text, read_corpus, sentences
from tasktune.ppt.self_supervised import choice_examples, pair_examples

from conftest import SHARED_DATA, save_tiny, write_jsonl

DOC = ("The film was great and the plot was fun. The acting was really lovely all the way. "
       "The food in the city was very good too. It was a very fun table and a lovely area.")


def docs():
    return [sentences(DOC.replace("film", w)) for w in ("film", "movie", "text", "table")]


def test_wikitext_is_stripped_by_a_parser():
    text = plain_text({"wikitext": "== History ==\n'''Paris''' is the [[capital city|capital]] of [[France]]."}, "x")
    assert text.strip() == "Paris is the capital of France."


def test_tasks_are_balanced_and_consistent():
    pairs = pair_examples(docs(), 30, seed=0)
    assert {ex.label for ex in pairs} == {"next", "same_doc", "other_doc"}
    for ex in choice_examples(docs(), 10, seed=0):
        options = dict(line.split(". ", 1) for line in ex.fields["options"].split("\n"))
        assert len(options) == 6 and ex.label in options
        doc = next(d for d in docs() if ex.fields["query"] in d)
        assert options[ex.label] == doc[doc.index(ex.fields["query"]) + 1]


def test_pretrain_then_init_downstream(tmp_path):
    model = save_tiny("gpt2", tmp_path / "m")
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": DOC.replace("film", w)} for w in ("film", "movie", "text")])
    runner = CliRunner()
    res = runner.invoke(app, ["pretrain-prompt", "--corpus", str(corpus), "--ppt-task", "pair", "--examples", "30",
                              "--output", str(tmp_path / "ppt"), "--model", str(model), "--dtype", "float32",
                              "--max-steps", "3", "--batch-size", "4", "--prompt-length", "4", "--dev-size", "6",
                              "--quiet"])
    assert res.exit_code == 0, res.exception
    write_jsonl(tmp_path / "d" / "train.jsonl", [{"text": "a lovely film", "label": "positive"},
                                                 {"text": "a dull film", "label": "negative"}] * 4)
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "d"), "--output", str(tmp_path / "down"), "--model",
                              str(model), "--dtype", "float32", "--init", "pretrained", "--init-from",
                              str(tmp_path / "ppt"), "--prompt-length", "4", "--max-steps", "1", "--quiet",
                              "--template", "review : {text} sentiment :{answer}", "--lr", "1e-9"])
    assert res.exit_code == 0, res.exception
    from safetensors.torch import load_file

    pre = load_file(str(tmp_path / "ppt" / "weights.safetensors"))["prompt"]
    down = load_file(str(tmp_path / "down" / "weights.safetensors"))["prompt"]
    torch.testing.assert_close(down, pre, atol=1e-6, rtol=1e-5)  # lr ~0: the init is the pre-trained prompt
    assert json.loads((tmp_path / "ppt" / "tasktune.json").read_text())["ppt"]["task"] == "pair"


def test_bad_corpus(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"text": "One. Two."}\n{oops\n')
    with pytest.raises(TasktuneError, match="c.jsonl:2"):
        read_corpus(tmp_path / "c.jsonl")


@pytest.mark.skipif(not (SHARED_DATA / "corpus").is_dir(), reason="shared data absent")
def test_shared_corpus_reads():
    corpus = read_corpus(SHARED_DATA / "corpus" / "documents.jsonl")
    assert len(corpus) > 300 and not any("[[" in s for d in corpus for s in d)
