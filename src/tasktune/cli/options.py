"""Generate CLI options from config dataclasses, so settings are declared once.

Each dataclass field becomes `--field-name`, with its type, its default, and its help
text taken from the string literal written under the field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache

import typer


@cache
def field_docs(cls) -> dict[str, str]:
    """The docstring written under each field of a dataclass (and of its bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:] + [None], strict=True):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                    and isinstance(getattr(nxt, "value", None), ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def field_owner(cls, name: str) -> type:
    """The class in `cls`'s MRO that declares field `name` (shared fields have one owner)."""
    for klass in reversed(cls.__mro__):
        if name in getattr(klass, "__annotations__", {}):
            return klass
    return cls


def dataclass_parameters(*classes) -> list[inspect.Parameter]:
    """Keyword-only typer parameters for every field of the given dataclasses.

    A field two classes share must be the same field (declared once, in a common base such as
    SoftPromptConfig): two different fields of one name would give one option two meanings, and
    that is an error here, not a silent first-wins."""
    params: dict[str, inspect.Parameter] = {}
    owners: dict[str, type] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            owner = field_owner(cls, f.name)
            if f.name in params:
                if owners[f.name] is not owner:
                    raise TypeError(f"option --{f.name.replace('_', '-')} is declared by both "
                                    f"{owners[f.name].__name__} and {owner.__name__}")
                continue
            owners[f.name] = owner
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            bounds = {k: f.metadata[k] for k in ("min", "max") if f.metadata.get(k) is not None}
            flag = "--" + f.name.replace("_", "-")
            if hints[f.name] is bool:  # a switch both ways: --reparam / --no-reparam
                flag += "/--no-" + f.name.replace("_", "-")
            option = typer.Option(default, flag, help=docs.get(f.name, ""), **bounds,
                                  rich_help_panel=owner.__name__.replace("Config", "") + " options")
            params[f.name] = inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                               annotation=hints[f.name])
    return list(params.values())


def build_config(cls, values: dict):
    """An instance of `cls` from the CLI values that name its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def option(name: str, default, help: str, annotation, *flags: str, **bounds) -> inspect.Parameter:
    """A keyword-only typer option written by hand (the ones no config dataclass holds); `bounds`:
    typer's min / max."""
    flags = flags or ("--" + name.replace("_", "-"),)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                             default=typer.Option(default, *flags, help=help, **bounds), annotation=annotation)


MODEL_OPTIONS = [
    option("model", "smollm2-135m", "Alias, local folder or hub id of the backbone.", str),
    option("dtype", "auto", "Backbone weights: auto (bf16 where it multiplies faster than fp32 here, "
           "measured once), float32, bfloat16.", str),
    option("device", None, "cpu, cuda, cuda:1 ... (default: cuda if available).", str | None),
    option("trust_remote_code", False, "Run the model repository's own code (off unless asked).", bool),
]


def with_signature(func, params: list[inspect.Parameter]):
    """Give `func(**kwargs)` an explicit signature that typer reads to build the command."""
    func.__signature__ = inspect.Signature(params)
    return func
