"""`tasktune compare` and `tasktune report` on a tiny model: the grid runs as ordinary train runs,
resumes, records failures, reports baselines and spread, and docs regenerate from results only."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasktune import TasktuneError
from tasktune.cli.app import app, train_option_names
from tasktune.experiments import docs
from tasktune.experiments.config import load_experiment
from tasktune.experiments.runner import read_results, safe

from conftest import SHARED_DATA, save_tiny, toy_rows, write_jsonl

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def run_clean_grid(cfg: Path, out: Path) -> list[dict]:
    """`tasktune compare` on a config every cell of which must succeed; its records."""
    result = runner.invoke(app, ["compare", str(cfg), "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = read_results(out)
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    return records


def config(tmp_path, body: str) -> Path:
    model = save_tiny("gpt2", tmp_path / "model")
    write_jsonl(tmp_path / "toy" / "train.jsonl", toy_rows(40))
    write_jsonl(tmp_path / "toy" / "dev.jsonl", toy_rows(8))
    write_jsonl(tmp_path / "shift.jsonl", toy_rows(6))
    path = tmp_path / "exp.toml"
    path.write_text(f'model = "{model}"\ndata = ["toy"]\nseeds = [0, 1, 2]\nmax_steps = 2\n'
                    f'eval_also = ["shift.jsonl"]\ntemplate = "review : {{text}} sentiment :{{answer}}"\n'
                    f'train = {{ batch_size = 4, dtype = "float32", dev_size = 6, eval_every = 1 }}\n' + body)
    return path


def test_a_grid_runs_resumes_and_reports(tmp_path):
    cfg = config(tmp_path, '[methods.prompt]\nmethod = "prompt-tuning"\nensemble = true\n'
                           '[methods.len]\nmethod = "prompt-tuning"\n[methods.len.axes]\nprompt_length = [1, 3]\n'
                           '[methods.broken]\nmethod = "prompt-tuning"\ninit = "text"\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", str(cfg), "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = read_results(out)
    ids = [r["id"] for r in records]
    assert len(ids) == 1 + 3 + 6 + 3 + 1 and len(set(ids)) == len(ids)  # baselines, cells, ensemble
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 3 and all("toy/broken" in r["error"] for r in failed)  # init=text without text
    cell = next(r for r in records if r["id"] == "toy/prompt/seed0")
    assert set(cell["evaluations"]) == {"toy/dev.jsonl", cell_key(tmp_path)}  # reported split + eval_also
    assert cell["summary"]["trainable_parameters"] > 0 and cell["commit"] and cell["versions"]["torch"]
    assert (out / "runs" / "toy__prompt__seed0" / "tasktune.json").is_file()  # a normal artifact
    report = (out / "report.md").read_text()
    assert "majority class" in report and "zero-shot" in report and " ± " in report and "ensemble" in report
    assert all((out / f).is_file() for f in ("params.png", "curves.png", "axis_prompt_length.png"))

    # resumable: finished cells are skipped, failed ones run again, and a cell killed before its
    # first checkpoint (a work folder and nothing else) starts over
    (out / "runs" / ".toy__broken__seed0.partial").mkdir()
    again = runner.invoke(app, ["compare", str(cfg), "--output", str(out), "--quiet"])
    assert again.exit_code == 0
    assert len(read_results(out)) == len(records) + 3
    assert not any("already holds a run" in r.get("error", "") for r in read_results(out))


def test_a_generation_grid_reports_bleu_without_a_majority_row(tmp_path):
    model = save_tiny("gpt2", tmp_path / "model")
    rows = [{"table": f"name {w} area city", "text": f"{w} is a city"} for w in ("paris", "london", "rome", "oslo")]
    write_jsonl(tmp_path / "gen" / "train.jsonl", rows * 4)
    write_jsonl(tmp_path / "gen" / "dev.jsonl", rows[:2])
    cfg = tmp_path / "gen.toml"
    cfg.write_text(f'model = "{model}"\ndata = ["gen"]\nseeds = [0, 1, 2]\nmax_steps = 2\nobjective = "generation"\n'
                   'template = "table : {table} text :{answer}"\n'
                   'train = { batch_size = 4, dtype = "float32", dev_size = 4, eval_every = 1 }\n'
                   '[methods.prompt]\nmethod = "prompt-tuning"\n')
    out = tmp_path / "out"
    records = run_clean_grid(cfg, out)
    cell = next(r for r in records if r["id"] == "gen/prompt/seed0")
    bleu = cell["evaluations"]["gen/dev.jsonl"]["bleu"]
    report = (out / "report.md").read_text()
    assert "majority" not in report and "zero-shot" in report
    row = next(line for line in report.splitlines() if line.startswith("| prompt"))
    mean = sum(r["evaluations"]["gen/dev.jsonl"]["bleu"] for r in records if r["kind"] == "cell") / 3
    assert f"{mean:.1f} ± " in row and 0 <= bleu <= 100  # BLEU as sacrebleu gives it, not times 100


def test_a_facts_grid_trains_on_the_file_and_reports_its_test_split_beside_the_majority_object(tmp_path):
    model = save_tiny("gpt2", tmp_path / "model")
    rows = [{"relation": "P19", "relation_name": "place of birth", "subject": f"name {i}",
             "object": ("paris", "london", "paris")[i % 3]} for i in range(60)]
    write_jsonl(tmp_path / "facts" / "P19.jsonl", rows)
    cfg = tmp_path / "facts.toml"
    cfg.write_text(f'model = "{model}"\ndata = ["facts/P19.jsonl"]\nseeds = [0, 1, 2]\nmax_steps = 2\n'
                   'objective = "facts"\ntrain = { batch_size = 4, dtype = "float32", eval_every = 1 }\n'
                   '[methods.p-tuning]\nmethod = "p-tuning"\nencoder = "mlp"\n')
    out = tmp_path / "out"
    records = run_clean_grid(cfg, out)
    cell = next(r for r in records if r["kind"] == "cell")
    test = cell["evaluations"]["facts/P19.jsonl"]
    assert "p_at_1" in test and test["majority_object"] == "paris"
    report = (out / "report.md").read_text()
    majority = next(line for line in report.splitlines() if line.startswith("| majority object"))
    assert f"{100 * test['majority_object_p_at_1']:.1f}" in majority and "| p-tuning" in report


def test_model_is_an_axis_with_a_zero_shot_row_per_model(tmp_path):
    cfg = config(tmp_path, '[methods.prompt]\nmethod = "prompt-tuning"\n[methods.prompt.axes]\nmodel = ["MODEL_A", '
                           '"MODEL_B"]\n')
    a, b = save_tiny("gpt2", tmp_path / "gpt2"), save_tiny("llama", tmp_path / "llama")
    cfg.write_text(cfg.read_text().replace("MODEL_A", str(a)).replace("MODEL_B", str(b)))
    out = tmp_path / "out"
    records = run_clean_grid(cfg, out)
    base = next(r for r in records if r["kind"] == "baseline")
    assert [x["model"] for x in base["baselines"]] == [str(a), str(b)]
    cells = [r for r in records if r["kind"] == "cell"]
    assert {r["axes"]["model"] for r in cells} == {str(a), str(b)} and len(cells) == 6
    for r in cells:  # each cell trained on its own backbone
        meta = (out / "runs" / safe(r["id"].replace("/", "__")) / "tasktune.json").read_text()
        assert Path(r["axes"]["model"]).name in meta
    report = (out / "report.md").read_text()
    assert report.count("| majority class") == 1 and report.count("| zero-shot (model=") == 2
    assert f"prompt [model={a}]" in report and f"prompt [model={b}]" in report


def test_a_failure_run_again_successfully_leaves_the_report():
    from tasktune.experiments.report import render

    ok = {"id": "toy/p/seed0", "dataset": "toy", "kind": "cell", "status": "ok", "commit": "abc", "model": "m",
          "max_steps": 1, "machine": "cpu", "versions": {}, "method_name": "p", "seed": 0, "axes": {},
          "summary": {"trainable_parameters": 3}, "evaluations": {"toy/dev.jsonl": {"accuracy": 0.5}}}
    failed = {"id": "toy/p/seed0", "kind": "cell", "status": "failed", "error": "toy/p/seed0: killed"}
    assert "Failed cells: toy/p/seed0: killed" in render([failed], "x")
    assert "Failed cells" not in render([failed, ok], "x") and "| p (best) | 1 | 50.0 |" in render([failed, ok], "x")
    from tasktune.experiments.report import still_failed

    other = {"id": "toy/q/seed0", "kind": "cell", "status": "failed", "error": "toy/q/seed0: bad"}
    assert still_failed([failed, ok, other]) == [other]  # what `compare` prints as failed: not run again since


def cell_key(tmp_path):
    return f"{tmp_path.name}/shift.jsonl"


@pytest.mark.parametrize("body,needle", [
    ('[methods.x]\nmethod = "lora"\n', "unknown method 'lora'"),
    ('[methods.x]\nmethod = "prompt-tuning"\ncolour = 3\n', "'colour' is not a `tasktune train` option"),
    ('[methods.x]\nmethod = "prompt-tuning"\nseed = 3\n', "'seed' is set by the experiment"),
    ('colour = 1\n[methods.x]\nmethod = "prompt-tuning"\n', "unknown key 'colour'"),
])
def test_bad_configs_name_the_key(tmp_path, body, needle):
    with pytest.raises(TasktuneError, match=needle.replace("(", r"\(").replace("`", ".")):
        load_experiment(config(tmp_path, body), train_option_names())


def test_missing_data_and_too_few_seeds(tmp_path):
    cfg = config(tmp_path, '[methods.x]\nmethod = "prompt-tuning"\n')
    text = cfg.read_text()
    cfg.write_text(text.replace('data = ["toy"]', 'data = ["nowhere"]'))
    with pytest.raises(TasktuneError, match="nowhere"):
        load_experiment(cfg, train_option_names())
    cfg.write_text(text.replace("seeds = [0, 1, 2]", "seeds = [0]"))
    with pytest.raises(TasktuneError, match="at least 3"):
        load_experiment(cfg, train_option_names())
    cfg.write_text(text + "seeds = [4]\n")  # a method's own seeds: min_seeds holds for them too
    with pytest.raises(TasktuneError, match=r"\[methods.x\]: 'seeds': 1 seeds"):
        load_experiment(cfg, train_option_names())
    cfg.write_text("min_seeds = 1\n" + text + "seeds = [4]\n")
    exp = load_experiment(cfg, train_option_names())
    assert [c.seed for c in exp.cells] == [4] and exp.seeds == [0, 1, 2]


def test_report_check_fails_on_a_hand_edit(tmp_path):
    results = tmp_path / "results" / "demo"
    results.mkdir(parents=True)
    record = {"id": "toy/zero-shot", "dataset": "toy", "kind": "baseline", "status": "ok", "commit": "abc",
              "model": "m", "max_steps": 1, "machine": "cpu", "versions": {},
              "baselines": [{"template": "", "evaluations": {"toy/dev.jsonl": {"accuracy": 0.5,
                                                                               "majority_baseline": 0.5}}}]}
    (results / "results.jsonl").write_text(json.dumps(record) + "\n")
    doc = tmp_path / "DOC.md"
    doc.write_text("# Doc\n")
    assert docs.write_section(doc, results, "demo")
    assert docs.check(doc, tmp_path / "results") == []
    doc.write_text(doc.read_text() + "\n<!-- compare:demo:glance:start -->\n<!-- compare:demo:glance:end -->\n")
    assert docs.write_section(doc, results, "demo:glance") and docs.check(doc, tmp_path / "results") == []
    doc.write_text(doc.read_text().replace("50.0", "55.0", 1))  # a number typed by hand
    assert docs.check(doc, tmp_path / "results") == ["demo"]


def test_the_repository_docs_match_their_results():
    """What CI checks: every generated compare section of docs/BENCHMARKS.md re-renders from
    docs/results/compare/NAME/results.jsonl exactly (no training)."""
    for doc in (ROOT / "docs" / "BENCHMARKS.md", ROOT / "README.md"):
        assert docs.check(doc, ROOT / "docs" / "results" / "compare") == [], doc
        assert docs.check_results(doc, ROOT / "docs" / "results") == [], doc


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not on this machine")
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "docs" / "experiments").glob("*.toml")))
def test_the_committed_experiment_configs_are_valid(name):
    exp = load_experiment(ROOT / "docs" / "experiments" / name, train_option_names())
    assert len(exp.seeds) >= 3 and exp.cells
    if name.startswith("sst2"):
        assert exp.eval_also and exp.ensembles  # the SST-2 comparison has its domain shift and ensemble rows


def test_report_check_from_the_command_line():
    result = runner.invoke(app, ["report", "--check", "--doc", str(ROOT / "docs" / "BENCHMARKS.md"), "--doc",
                                 str(ROOT / "README.md"), "--results-root", str(ROOT / "docs" / "results" / "compare")])
    assert result.exit_code == 0, result.output


def test_a_single_seed_row_is_never_the_best_where_rows_have_spread():
    from tasktune.experiments.report import render

    def cell(method, seed, acc, machine="cpu A"):
        return {"id": f"toy/{method}/seed{seed}", "dataset": "toy", "kind": "cell", "status": "ok", "commit": "abc",
                "model": "m", "max_steps": 1, "machine": machine, "versions": {}, "method_name": method,
                "seed": seed, "axes": {}, "summary": {"trainable_parameters": 3},
                "evaluations": {"toy/dev.jsonl": {"accuracy": acc}}}

    records = [cell("many", 0, 0.80), cell("many", 1, 0.84), cell("lucky", 0, 0.95, "cpu B"),
               cell("close", 0, 0.81), cell("close", 1, 0.83)]
    report = render(records, "x")
    assert "| many (best) | 2 | 82.0 ± 2.8 |" in report
    assert "| lucky | 1 | 95.0 |" in report  # higher, but one seed: outside the noise, not crowned
    assert "| close ~ | 2 |" in report
    assert "machine: cpu A; cpu B;" in report
