import pytest

from tasktune import TasktuneError
from tasktune.data import load_splits, read_examples
from tasktune.templates import Template, Verbalizer, default_template


def test_csv_and_tsv_with_field_mapping(tmp_path):
    (tmp_path / "a.csv").write_text('sentence,label\n"good, really",positive\nbad,negative\n')
    (tmp_path / "b.tsv").write_text("sentence\tlabel\ngood\tpositive\n")
    rows = read_examples(tmp_path / "a.csv", field_map={"sentence": "text"})
    assert rows[0].fields == {"text": "good, really"} and rows[0].label == "positive" and rows[0].where.endswith(":2")
    assert read_examples(tmp_path / "b.tsv", field_map={"sentence": "text"})[0].fields["text"] == "good"


def test_csv_row_with_extra_cells_names_the_line(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\ngood,positive\nbad,negative,oops\n")
    with pytest.raises(TasktuneError, match="a.csv:3"):
        read_examples(tmp_path / "a.csv")


def test_folder_splits_and_labels(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    (tmp_path / "valid.jsonl").write_text('{"text": "c", "label": "y"}\n')
    data = load_splits(str(tmp_path))
    assert len(data.train) == 2 and len(data.dev) == 1 and data.labels == ["x", "y"]


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(TasktuneError, match="no such data file"):
        load_splits(str(tmp_path / "nope.jsonl"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(TasktuneError, match="unsupported file type"):
        read_examples(tmp_path / "a.txt")


def test_template_parsing_and_errors():
    t = Template.parse("[P:2] Q: {question} {{literal}} [P:1]{answer}")
    assert t.fields == ["question"] and t.n_soft == 3 and t.has_answer
    for bad in ("{text} {answer} {answer}", "no fields here", "[P:0] {text}", "{text} } "):
        with pytest.raises(TasktuneError):
            Template.parse(bad)


def test_verbalizer_specs_and_default_templates():
    v = Verbalizer.from_spec("positive=great,negative=terrible", ["positive", "negative"])
    assert v.words == (" great", " terrible")
    with pytest.raises(TasktuneError, match="no word for label"):
        Verbalizer.from_spec("positive=great", ["positive", "negative"])
    assert default_template(["text"], ["positive", "negative"]).startswith("Review:")
    assert default_template(["text"], ["sports", "world"]).startswith("Text:")
    assert "{hypothesis}" in default_template(["premise", "hypothesis"], ["entailment"])
