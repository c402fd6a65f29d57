"""Data in the ecosystem's formats: `save_to_disk` folders, Parquet files, dataset repository folders
with configurations (--subset) and split slices (--split), the hub path as load_dataset takes it."""

import json

import pytest

datasets = pytest.importorskip("datasets")
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from tasktune import TasktuneError  # noqa: E402
from tasktune.cli.app import app  # noqa: E402
from tasktune.data import load_splits  # noqa: E402

from conftest import save_tiny, toy_rows  # noqa: E402

runner = CliRunner()
TEMPLATE = "review : {text} sentiment :{answer}"


def as_columns(rows, text="sentence"):
    return {text: [r["text"] for r in rows], "label": [r["label"] for r in rows]}


@pytest.fixture
def saved(tmp_path):
    """A DatasetDict as users save it: ClassLabel integers, a `sentence` column, train + validation."""
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})

    def split(rows):
        cols = as_columns(rows)
        cols["label"] = [1 if lab == "positive" else 0 for lab in cols["label"]]
        return datasets.Dataset.from_dict(cols, features=feats)

    dd = datasets.DatasetDict({"train": split(toy_rows(16)), "validation": split(toy_rows(6)), "extra": split(
        toy_rows(2))})
    dd.save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


def test_save_to_disk_folder(saved):
    data = load_splits(str(saved), field_map={"sentence": "text"})
    assert len(data.train) == 16 and len(data.dev) == 6 and not data.test  # "extra" is no known split
    assert data.labels == ["positive", "negative"]  # ClassLabel names, in first-seen order
    assert data.train[0].fields == {"text": "the movie was great"} and data.train[0].where.endswith("[train]:0")
    only = load_splits(str(saved), field_map={"sentence": "text"}, split="validation")
    assert len(only.dev) == 6 and not only.train
    with pytest.raises(TasktuneError, match=r"no column 'sentence_x' \(columns: sentence, label\)"):
        load_splits(str(saved), field_map={"sentence_x": "text"})
    with pytest.raises(TasktuneError, match="no split 'dev'"):
        load_splits(str(saved), split="dev")


def test_parquet_file_and_folder(tmp_path):
    pq.write_table(pa.table(as_columns(toy_rows(10), "text")), tmp_path / "train.parquet")
    pq.write_table(pa.table(as_columns(toy_rows(4), "text")), tmp_path / "dev.parquet")
    one = load_splits(str(tmp_path / "train.parquet"))
    assert len(one.train) == 10 and one.train[2].where == f"{tmp_path / 'train.parquet'}:row 3"
    folder = load_splits(str(tmp_path))
    assert len(folder.train) == 10 and len(folder.dev) == 4
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TasktuneError, match="bad.parquet: unreadable Parquet file"):
        load_splits(str(tmp_path / "bad.parquet"))
    with pytest.raises(TasktuneError, match="--subset and --split apply to"):
        load_splits(str(tmp_path), subset="x")


@pytest.fixture
def repo(tmp_path):
    """A dataset repository as on the hub: two configurations declared in the dataset card."""
    root = tmp_path / "repo"
    for config, n in (("sst", 12), ("tiny", 4)):
        (root / config).mkdir(parents=True)
        for split, k in (("train", n), ("validation", 4)):
            (root / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in toy_rows(k)))
    card = ["---", "configs:"]
    for config in ("sst", "tiny"):
        card += [f"- config_name: {config}", "  data_files:",
                 f"  - split: train\n    path: {config}/train.jsonl",
                 f"  - split: validation\n    path: {config}/validation.jsonl"]
    (root / "README.md").write_text("\n".join(card + ["---", "# toy"]) + "\n")
    return root


def test_repository_folder_with_subset_and_split_slice(repo):
    data = load_splits(str(repo), subset="sst")
    assert len(data.train) == 12 and len(data.dev) == 4
    assert len(load_splits(str(repo), subset="tiny").train) == 4
    sliced = load_splits(str(repo), subset="sst", split="train[:5]")
    assert len(sliced.train) == 5 and not sliced.dev
    with pytest.raises(TasktuneError, match="not loadable as a dataset"):
        load_splits(str(repo), subset="nope")


def test_cli_trains_on_a_repository_subset_and_evaluates_a_saved_folder(repo, saved, tmp_path):
    model = save_tiny("gpt2", tmp_path / "tiny")
    result = runner.invoke(app, ["train", "--model", str(model), "--data", str(repo), "--subset", "sst", "--split",
                                 "train[:10]", "--output",
                                 str(tmp_path / "run"), "--template", TEMPLATE, "--max-steps", "2", "--batch-size",
                                 "4", "--prompt-length", "2", "--dtype", "float32", "--quiet"])
    assert result.exit_code == 0, result.exception
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["dev"]["n"] == 1  # one split only: dev is held out of its 10 rows
    result = runner.invoke(app, ["zero-shot", "--model", str(model), "--data", str(saved), "--text-field", "sentence",
                                 "--template", TEMPLATE, "--dtype", "float32", "--json"])
    assert result.exit_code == 0, result.exception
    assert json.loads(result.stdout)["n"] == 6
    result = runner.invoke(app, ["zero-shot", "--model", str(model), "--data", str(saved), "--field", "text=x",
                                 "--template", TEMPLATE, "--dtype", "float32"])
    assert isinstance(result.exception, TasktuneError) and "no column 'text'" in str(result.exception)
