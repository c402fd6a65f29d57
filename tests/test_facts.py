import json

from typer.testing import CliRunner

from tasktune.cli.app import app
from tasktune.data.facts import manual_template, p_tuning_template, split_of

from conftest import save_tiny, write_jsonl

CITIES = ["paris", "london"]


def test_split_is_by_subject_and_deterministic():
    assert split_of("Doug Jarvis") == split_of("Doug Jarvis")
    counts = {s: 0 for s in ("train", "dev", "test")}
    for i in range(1000):
        counts[split_of(f"person {i}")] += 1
    assert 540 < counts["train"] < 660 and 150 < counts["test"] < 250


def test_templates():
    assert manual_template("P19") == "{subject} was born in{answer}"
    assert p_tuning_template("P19") == "[P:3] {subject} was born in [P:3]{answer}"


def test_facts_p_tuning_end_to_end(tmp_path):
    model = save_tiny("gpt2", tmp_path / "m")
    rows = [{"relation": "P19", "relation_name": "place of birth", "subject": f"name {i}",
             "object": CITIES[i % 2]} for i in range(60)]
    rows.append({"relation": "P19", "relation_name": "x", "subject": "area city", "object": "the city"})
    data = write_jsonl(tmp_path / "P19.jsonl", rows)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--method", "p-tuning", "--task", "facts", "--data", str(data), "--output",
                              str(tmp_path / "out"), "--model", str(model), "--max-steps", "3", "--quiet",
                              "--dtype", "float32", "--encoder", "mlp"])
    assert res.exit_code == 0, res.exception
    meta = json.loads((tmp_path / "out" / "tasktune.json").read_text())
    assert meta["objective"] == "vocabulary" and meta["template"].startswith("[P:3] {subject} was born in")
    res = runner.invoke(app, ["eval", str(tmp_path / "out"), "--data", str(data), "--json"])
    metrics = json.loads(res.stdout)
    assert 0 <= metrics["p_at_1"] <= 1 and metrics["n"] > 0
    res = runner.invoke(app, ["predict", str(tmp_path / "out"), "--text", "name 3"])
    assert res.exit_code == 0 and res.stdout.split()[0]


def test_zero_shot_facts_prints_the_majority_object_beside_p_at_1(tmp_path):
    model = save_tiny("gpt2", tmp_path / "m")
    rows = [{"relation": "P19", "subject": f"name {i}", "object": CITIES[int(i % 3 == 0)]} for i in range(90)]
    data = write_jsonl(tmp_path / "P19.jsonl", rows)
    res = CliRunner().invoke(app, ["zero-shot", "--objective", "facts", "--data", str(data), "--model", str(model),
                                   "--dtype", "float32", "--json"])
    assert res.exit_code == 0, res.exception
    metrics = json.loads(res.stdout)
    assert metrics["majority_object"] == "paris" and 0.5 < metrics["majority_object_p_at_1"] < 0.8
    assert 0 <= metrics["p_at_1"] <= 1
