"""Model aliases whose file ships in chunk packages (the optional Gemma 3 270M): put together once,
checked against its sha256, never imported."""

import hashlib
import sys

import pytest

from tasktune import TasktuneError
from tasktune.backbone.aliases import ALIASES, Alias, locate_gguf


def fake_parts(root, chunks: list[bytes]) -> tuple[str, ...]:
    names = []
    for i, data in enumerate(chunks, 1):
        pkg = root / f"fakemodel_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a chunk package must never be imported')\n")
        (pkg / "data" / f"m.gguf.part{i - 1:02d}").write_bytes(data)
        names.append(pkg.name)
    return tuple(names)


def test_chunked_alias_is_assembled_once_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    parts = fake_parts(tmp_path / "site", chunks)
    whole = b"".join(chunks)
    alias = Alias("fake", "fakemodel", "m.gguf", "d", "l", "pip install fake", "", parts,
                  hashlib.sha256(whole).hexdigest())
    path = locate_gguf(alias)
    assert path.read_bytes() == whole and path.parent == tmp_path / "cache" / "gguf"
    assert not any(n.startswith("fakemodel") for n in sys.modules)
    assert locate_gguf(alias) == path  # second call: the assembled file, no second pass

    bad = Alias("bad", "fakemodel", "bad.gguf", "d", "l", "i", "", parts, "0" * 64)
    with pytest.raises(TasktuneError, match="do not match the expected sha256"):
        locate_gguf(bad)
    assert not (tmp_path / "cache" / "gguf" / "bad.gguf").exists()  # nothing half-written left
    missing = Alias("gone", "fakemodel", "gone.gguf", "d", "l", "i", "", parts + ("fakemodel_part9",), "")
    assert locate_gguf(missing) is None


def test_gemma_is_optional_and_names_its_terms():
    gemma = ALIASES["gemma3-270m"]
    assert "Gemma Terms of Use" in gemma.license and "never the default" in gemma.description
    assert all(f"part{i}" in gemma.install for i in range(1, 5))


def test_models_command_lists_both_aliases_with_their_licence():
    from typer.testing import CliRunner

    from tasktune.cli.app import app

    out = CliRunner().invoke(app, ["models"]).stdout
    assert "smollm2-135m" in out and "Apache-2.0" in out
    gemma = next(line for line in out.splitlines() if line.startswith("gemma3-270m"))
    assert "Gemma Terms of Use" in gemma and ("installed" in gemma)
