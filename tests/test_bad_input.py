"""A table of bad inputs against the CLI and artifacts: each gets exit code 2, a one-line message
naming what is wrong, and leaves every file on disk as it was (the server's table is in
test_serve.py)."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from tasktune.cli.app import main

from conftest import save_tiny, toy_rows, write_jsonl

T = "review : {text} sentiment :{answer}"


def cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tasktune", *[str(a) for a in args]])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, capsys.readouterr().err


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model, clean data, bad data, a finished run and tampered copies of it."""
    root = tmp_path_factory.mktemp("world")
    model = save_tiny("gpt2", root / "model")
    write_jsonl(root / "data" / "train.jsonl", toy_rows(16))
    write_jsonl(root / "data" / "dev.jsonl", toy_rows(4))
    (root / "latin1").mkdir()
    (root / "latin1" / "train.jsonl").write_bytes(b'{"text": "good", "label": "positive"}\n{"text": "caf\xe9"}\n')
    (root / "badjson").mkdir()
    (root / "badjson" / "train.jsonl").write_text('{"text": "good", "label": "positive"}\n{"text": \n')
    (root / "notobj").mkdir()
    (root / "notobj" / "train.jsonl").write_text('["good", "positive"]\n')
    (root / "nolabel").mkdir()
    (root / "nolabel" / "train.jsonl").write_text('{"text": "good"}\n')
    write_jsonl(root / "unseen" / "train.jsonl", toy_rows(8))
    write_jsonl(root / "unseen" / "dev.jsonl", [{"text": "meh", "label": "positive"},
                                                {"text": "so so", "label": "mixed"}])
    (root / "cells").mkdir()
    (root / "cells" / "train.csv").write_text("text,label\ngood,positive,extra\n")
    (root / "a_file").write_text("not a folder\n")
    (root / "nonempty").mkdir()
    (root / "nonempty" / "notes.txt").write_text("mine\n")
    common = ["--model", model, "--dtype", "float32", "--quiet", "--template", T, "--max-steps", 2,
              "--batch-size", 4, "--prompt-length", 2]
    code = cli_plain(["train", "--data", root / "data", "--output", root / "run", *common])
    assert code == 0
    code = cli_plain(["train", "--data", root / "data", "--output", root / "run3", *common[:-1], 3])
    assert code == 0
    tampered = {}
    for name in ("no_weights", "truncated", "no_base", "shape", "badjson_meta", "format", "config_key", "method"):
        shutil.copytree(root / "run", root / name)
        tampered[name] = root / name
    (root / "no_weights" / "weights.safetensors").unlink()
    w = root / "truncated" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:40])
    edit_meta(root / "truncated", lambda m: m.pop("weights"))  # no checksum: the file itself must be checked
    edit_meta(root / "no_base", lambda m: m.pop("base_model"))
    shutil.copy(root / "run3" / "weights.safetensors", root / "shape" / "weights.safetensors")
    edit_meta(root / "shape", lambda m: m.pop("weights"))
    (root / "badjson_meta" / "tasktune.json").write_text('{"format": "tasktune/1",')
    edit_meta(root / "format", lambda m: m.update(format="tasktune/9"))
    edit_meta(root / "config_key", lambda m: m["method_config"].update(colour="blue"))
    edit_meta(root / "method", lambda m: m.update(method="lora"))
    return root, model, common


def cli_plain(args) -> int:
    saved = sys.argv
    sys.argv = ["tasktune", *[str(a) for a in args]]
    try:
        main()
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = saved
    return 0


def edit_meta(folder: Path, change) -> None:
    meta = json.loads((folder / "tasktune.json").read_text())
    change(meta)
    (folder / "tasktune.json").write_text(json.dumps(meta))


def _cases():
    """(id, args, needle): `R` is the world folder, `M` the model, `C` the common train options."""
    train = ["train", "--data", "R/data", "--output", "R/new", "C"]
    return [
        ("batch size 0", train + ["--batch-size", 0], "--batch-size"),
        ("save every 0", train + ["--save-every", 0], "--save-every"),
        ("negative prompt length", train + ["--prompt-length", -1], "--prompt-length"),
        ("max steps 0", train + ["--max-steps", 0], "--max-steps"),
        ("warmup ratio 2", train + ["--warmup-ratio", 2], "--warmup-ratio"),
        ("negative lr", train + ["--lr", -1], "--lr"),
        ("max length 2", train + ["--max-length", 2], "--max-length"),
        ("prefix dropout 1", ["train", "--method", "prefix-tuning", "--data", "R/data", "--output", "R/new", "C",
                              "--prefix-dropout", 1], "--prefix-dropout"),
        ("smart beta 2", train + ["--smart-beta", 2], "--smart-beta"),
        ("missing data", ["train", "--data", "R/nowhere", "--output", "R/new", "C"], "nowhere"),
        ("non-UTF-8 data", ["train", "--data", "R/latin1", "--output", "R/new", "C"], "train.jsonl:2: not UTF-8"),
        ("malformed JSON row", ["train", "--data", "R/badjson", "--output", "R/new", "C"], "train.jsonl:2"),
        ("row not an object", ["train", "--data", "R/notobj", "--output", "R/new", "C"], "train.jsonl:1"),
        ("row without label", ["train", "--data", "R/nolabel", "--output", "R/new", "C"], "train.jsonl:1"),
        ("dev label train never saw", ["train", "--data", "R/unseen", "--output", "R/new", "C"], "dev.jsonl:2"),
        ("csv row with extra cells", ["train", "--data", "R/cells", "--output", "R/new", "C"], "train.csv:2"),
        ("unknown method", train + ["--method", "lora"], "unknown method"),
        ("unknown objective", train + ["--objective", "ranking"], "unknown --objective"),
        ("template field not in data", ["train", "--data", "R/data", "--output", "R/new", "C", "--template",
                                        "{title} is {answer}"], "title"),
        ("answer not last (causal)", ["train", "--data", "R/data", "--output", "R/new", "C", "--template",
                                      "{answer} {text}"], "must be last"),
        ("malformed verbalizer", train + ["--verbalizer", "positive"], "verbalizer"),
        ("existing run, no flag", ["train", "--data", "R/data", "--output", "R/run", "C"], "--overwrite"),
        ("overwrite with bad data keeps the old run", ["train", "--data", "R/nowhere", "--output", "R/run", "C",
                                                       "--overwrite"], "nowhere"),
        ("overwrite and resume", ["train", "--data", "R/data", "--output", "R/run", "C", "--overwrite",
                                  "--resume"], "contradict"),
        ("resume without checkpoint", ["train", "--data", "R/data", "--output", "R/new", "C", "--resume"],
         "no checkpoint"),
        ("resume with another prompt length", ["train", "--data", "R/data", "--output", "R/run", "C", "--resume",
                                               "--prompt-length", 5], "prompt_length"),
        ("output is a file", ["train", "--data", "R/data", "--output", "R/a_file", "C"], "not a folder"),
        ("output holds other files", ["train", "--data", "R/data", "--output", "R/nonempty", "C"], "holds no run"),
        ("unknown model", ["train", "--data", "R/data", "--output", "R/new", "--model", "R/no-model",
                           "--dtype", "float32"], "no-model"),
        ("bad precision", train + ["--method", "fine-tuning", "--precision", "fp8"], "--precision"),
        ("eval: not an artifact", ["eval", "R/data", "--data", "R/data/dev.jsonl"], "not a tasktune artifact"),
        ("eval: missing data file", ["eval", "R/run", "--data", "R/none.jsonl"], "none.jsonl"),
        ("eval: batch size 0", ["eval", "R/run", "--data", "R/data/dev.jsonl", "--batch-size", 0], "--batch-size"),
        ("eval: beams 0", ["eval", "R/run", "--data", "R/data/dev.jsonl", "--beams", 0], "--beams"),
        ("artifact: weights missing", ["eval", "R/no_weights", "--data", "R/data/dev.jsonl"], "missing"),
        ("artifact: truncated weights", ["eval", "R/truncated", "--data", "R/data/dev.jsonl"], "unreadable"),
        ("artifact: no base_model", ["eval", "R/no_base", "--data", "R/data/dev.jsonl"], "base_model"),
        ("artifact: weights of another shape", ["eval", "R/shape", "--data", "R/data/dev.jsonl"], "do not fit"),
        ("artifact: malformed JSON", ["eval", "R/badjson_meta", "--data", "R/data/dev.jsonl"], "malformed JSON"),
        ("artifact: unknown format", ["eval", "R/format", "--data", "R/data/dev.jsonl"], "unknown format"),
        ("artifact: unknown config key", ["eval", "R/config_key", "--data", "R/data/dev.jsonl"], "colour"),
        ("artifact: unknown method", ["eval", "R/method", "--data", "R/data/dev.jsonl"], "unknown method"),
        ("predict: text and data", ["predict", "R/run", "--text", "x", "--data", "R/data/dev.jsonl"], "exactly one"),
        ("predict: empty text", ["predict", "R/run", "--text", " "], "empty"),
        ("predict: rows lack the field", ["predict", "R/run", "--data", "R/cells/train.csv"], "train.csv:2"),
        ("zero-shot: batch size 0", ["zero-shot", "--data", "R/data", "--batch-size", 0], "--batch-size"),
        ("serve: a bad artifact", ["serve", "R/no_weights"], "missing"),
        ("serve: port 0", ["serve", "R/run", "--port", 0], "--port"),
        ("serve: queue 0", ["serve", "R/run", "--max-queue", 0], "--max-queue"),
        ("unknown command", ["fly"], "No such command"),
    ]


@pytest.mark.parametrize("name,args,needle", _cases(), ids=[c[0] for c in _cases()])
def test_bad_input_is_one_line_and_changes_nothing(world, monkeypatch, capsys, name, args, needle):
    root, model, common = world
    expanded = []
    for a in args:
        if a == "C":
            expanded += common
        elif isinstance(a, str) and a.startswith("R/"):
            expanded.append(root / a[2:])
        else:
            expanded.append(a)
    if "--model" not in expanded and expanded[0] in ("zero-shot",):
        expanded += ["--model", model, "--dtype", "float32"]
    before = snapshot(root)
    code, err = cli(monkeypatch, capsys, *expanded)
    assert code == 2, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert needle in err, err
    assert snapshot(root) == before  # nothing written, nothing lost
    assert not (root / "new").exists() and not (root / ".new.partial").exists()


def test_the_table_is_long_enough():
    assert len(_cases()) >= 40
