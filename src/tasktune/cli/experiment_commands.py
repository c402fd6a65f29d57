"""`tasktune compare` (run an experiment grid) and `tasktune report` (render, or check, the
reports and generated doc sections from results files)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import typer

from tasktune import TasktuneError
from tasktune.cli import common


def register(app, train_option_names: set[str]) -> None:
    """Add compare and report to the typer app; cells run `app` itself, in this process."""

    def invoke(args: list[str]) -> dict:
        """Run a tasktune command as the command line would; the last JSON line it printed."""
        out = io.StringIO()
        with redirect_stdout(out):
            typer.main.get_command(app).main(args=args, prog_name="tasktune", standalone_mode=False)
        lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
        if not lines:
            raise TasktuneError(f"`tasktune {args[0]}` printed no result")
        return json.loads(lines[-1])

    @app.command("compare")
    def compare_cmd(
        config: Path = typer.Argument(..., help="Experiment TOML (see docs/EXPERIMENTS.md)."),
        output: Path = typer.Option(..., "--output", help="Folder for runs, results.jsonl, report.md and plots."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ):
        """Run a grid of methods x datasets x seeds (x ablation axes), each cell an ordinary train run;
        resumable; writes OUTPUT/results.jsonl, OUTPUT/report.md and PNG plots."""
        from tasktune.experiments.config import load_experiment
        from tasktune.experiments.report import plot, render, still_failed
        from tasktune.experiments.runner import run_experiment

        common.quiet_libraries()
        exp = load_experiment(config, train_option_names)
        records = run_experiment(exp, output, invoke, progress=not quiet)
        plot(records, output)
        (output / "report.md").write_text(render(records, exp.name, images="."), encoding="utf-8")
        failed = sorted({r["id"] for r in still_failed(records)})
        cells = len({r["id"] for r in records})  # a cell that failed and then ran again counts once
        common.print_json({"cells": cells, "failed": failed, "report": str(output / "report.md")})

    @app.command("report")
    def report_cmd(
        results: Path | None = typer.Argument(None, help="A compare output folder (holds results.jsonl)."),
        doc: list[Path] = typer.Option([Path("docs/BENCHMARKS.md"), Path("README.md")], "--doc",
                                       help="Document(s) with generated sections (repeatable)."),
        results_root: Path = typer.Option(Path("docs/results/compare"), "--results-root",
                                          help="Where the results of each generated section live (ROOT/NAME)."),
        check: bool = typer.Option(False, "--check", help="Re-render every generated section of --doc from its "
                                   "results and fail when one differs (CI); writes nothing."),
    ):
        """Render a compare folder's report.md and plots, and its section of --doc, from results.jsonl alone;
        without a folder, re-render the result:NAME sections of --doc from docs/results/NAME.json."""
        from tasktune.experiments import docs
        from tasktune.experiments.report import plot, render
        from tasktune.experiments.runner import read_results

        if check:
            checked = []
            for d in doc:
                stale = docs.check(d, results_root)
                stale += [f"result:{n}" for n in docs.check_results(d, results_root.parent)]
                if stale:
                    raise TasktuneError(f"{d}: generated section(s) {', '.join(stale)} differ from their results; "
                                        "run `tasktune report RESULTS` to regenerate")
                checked += [f"{d}:{n}" for n in docs.sections_in(d) + docs.result_sections_in(d)]
            common.print_json({"checked": checked, "stale": []})
            return
        if results is None:  # the sections rendered from benchmark scripts' results files
            changed = {str(d): docs.write_result_sections(d, results_root.parent) for d in doc}
            common.print_json({"changed": changed})
            return
        records = read_results(results)
        if not records:
            raise TasktuneError(f"{results}: no results.jsonl")
        name = results.name
        plot(records, results)
        (results / "report.md").write_text(render(records, name, images="."), encoding="utf-8")
        changed = {}
        for d in doc:  # the full section goes to BENCHMARKS.md; a document that holds NAME:glance gets that
            names = [n for n in docs.sections_in(d) if n.partition(":")[0] == name] or \
                ([name] if d.name == "BENCHMARKS.md" else [])
            for n in names:
                changed[f"{d}:{n}"] = docs.write_section(d, results, n)
        common.print_json({"report": str(results / "report.md"), "changed": changed})
