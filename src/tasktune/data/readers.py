"""Read labelled examples from JSONL, CSV, TSV or Parquet, with field renaming and precise errors.

Rows from any source (a file here, a `datasets` split in data/datasets_source.py) become
Examples through `rows_to_examples`, so renaming, list fields and label rules are the same."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from tasktune import TasktuneError

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


@dataclass
class Example:
    fields: dict[str, str]
    label: str | None = None
    where: str = ""  # "file:line", for error messages


def _check_utf8(path: Path) -> None:
    """A file that is not UTF-8 text is named with the line of its first bad byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TasktuneError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") \
            from None


def _parquet_rows(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TasktuneError(f"{path}: Parquet files need pyarrow (pip install 'tasktune[hub]')") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises its own error kinds for bad files
        raise TasktuneError(f"{path}: unreadable Parquet file ({str(e).splitlines()[0][:120]})") from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"row {i}", row


def iter_rows(path: Path):
    """Yield (line number, or "row N" for Parquet, and a dict) for every data row of the file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    _check_utf8(path)
    with path.open(encoding="utf-8", newline="") as f:
        if suffix in (".jsonl", ".json"):
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TasktuneError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise TasktuneError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                if None in row:
                    raise TasktuneError(f"{path}:{reader.line_num}: more cells than header columns")
                yield reader.line_num, row
        else:
            raise TasktuneError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .csv, .tsv or .parquet)")


def read_examples(
    path: str | Path,
    fields: list[str] | None = None,
    field_map: dict[str, str] | None = None,
    label_field: str = "label",
    require_label: bool = False,
    explode: str | None = None,
) -> list[Example]:
    """Read a file into Examples.

    `field_map` renames source columns to template fields ({"sentence": "text"}). `fields` lists
    the template fields every row must have (non-empty). A list of strings becomes one string
    joined by " ; " (WebNLG triples), except the `explode` field: one example per item (several
    references of one source, e.g. WebNLG texts).
    """
    path = Path(path)
    if not path.is_file():
        raise TasktuneError(f"{path}: no such data file")
    return rows_to_examples(((f"{path}:{n}", row) for n, row in iter_rows(path)), str(path), fields, field_map,
                            label_field, require_label, explode)


def rows_to_examples(rows, source: str, fields: list[str] | None = None, field_map: dict[str, str] | None = None,
                     label_field: str = "label", require_label: bool = False,
                     explode: str | None = None) -> list[Example]:
    """(where, dict) rows -> Examples; the rules of `read_examples`, for rows from any source."""
    field_map = field_map or {}
    out: list[Example] = []
    for where, row in rows:
        values = {field_map.get(k, k): v for k, v in row.items()}
        label = values.pop(label_field, None)
        if label is not None and not isinstance(label, str):
            label = str(label)
        if require_label and (label is None or label == ""):
            raise TasktuneError(f"{where}: missing label field '{label_field}'")
        flat = {}
        for k, v in values.items():
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                flat[k] = str(v)
            elif isinstance(v, list) and v and all(isinstance(x, str) for x in v) and k != explode:
                flat[k] = " ; ".join(v)
        for name in fields or []:
            if name not in values:
                raise TasktuneError(f"{where}: missing field '{name}' (row has {sorted(values)})")
            if not isinstance(values[name], str) or not values[name].strip():
                raise TasktuneError(f"{where}: field '{name}' is empty or not text")
        items = values.get(explode) if explode else None
        if isinstance(items, list):
            for item in items:
                out.append(Example({**flat, explode: str(item)}, label or None, where))
        else:
            out.append(Example(flat, label or None, where))
    if not out:
        raise TasktuneError(f"{source}: no rows")
    return out
