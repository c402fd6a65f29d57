"""The shape of the code: imports never run in a circle, and CLI options have one meaning each."""

import ast
from pathlib import Path

import typer.main

from tasktune.cli.app import app

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the tasktune modules it imports, at top level or inside functions alike."""
    files = {_module_name(p): p for p in (SRC / "tasktune").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[mod] |= {t for t in targets if t in files and t != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_import_graph_of_src_is_acyclic():
    graph = import_graph()
    assert len(graph) > 50 and graph["tasktune.build"] >= {"tasktune.task", "tasktune.spec"}  # the walk sees imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_lower_layers_never_import_the_task():
    lower = ("engine", "objectives", "methods", "regularizers", "templates", "data", "backbone")
    for mod, deps in import_graph().items():
        if mod.split(".")[1:2] and mod.split(".")[1] in lower:
            assert not deps & {"tasktune.task", "tasktune.build"}, mod


def test_every_command_has_unique_option_names():
    """Two config dataclasses declaring the same field would give one flag two meanings."""
    root = typer.main.get_command(app)
    checked = 0
    for name, command in root.commands.items():
        seen: dict[str, str] = {}
        for param in command.params:
            if param.param_type_name != "option":
                continue
            checked += 1
            for flag in param.opts + param.secondary_opts:
                assert flag not in seen, f"{name}: {flag} is both {seen[flag]} and {param.name}"
                seen[flag] = param.name
    assert checked > 100  # train alone has over 70 options

def test_a_field_declared_twice_is_refused():
    from dataclasses import dataclass

    import pytest

    from tasktune.cli.options import dataclass_parameters

    @dataclass
    class A:
        init: str = "x"

    @dataclass
    class B:
        init: int = 0

    with pytest.raises(TypeError, match="declared by both A and B"):
        dataclass_parameters(A, B)
