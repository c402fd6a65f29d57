"""A dataset's splits (train, dev, test), from a file, a folder of splits, the bundled demo, a `datasets`
folder (save_to_disk or a dataset repository), or a hub dataset (data/datasets_source.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasktune import TasktuneError
from tasktune.data.readers import SUFFIXES, Example, read_examples

SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation", "dev32"), "test": ("test",)}
DEMO_DIR = Path(__file__).parent / "demo"


@dataclass
class DataSplits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    source: str

    @property
    def labels(self) -> list[str]:
        """Label set, in first-seen order of the training split: a dev or test label train never saw
        is an error naming its row (check_labels), never a new class. Without a train split (an
        evaluation-only folder), the labels of dev then test."""
        seen: dict[str, None] = {}
        for ex in self.train or (self.dev + self.test):
            if ex.label is not None:
                seen.setdefault(ex.label, None)
        return list(seen)

    def check_labels(self) -> None:
        known = set(self.labels)
        for ex in self.dev + self.test:
            if ex.label is not None and ex.label not in known:
                raise TasktuneError(f"{ex.where}: label '{ex.label}' does not occur in the training split "
                                    f"(labels: {', '.join(sorted(known))})")

    @property
    def fields(self) -> list[str]:
        rows = self.train or self.dev or self.test
        return list(rows[0].fields) if rows else []


def find_split(folder: Path, split: str) -> Path | None:
    for stem in SPLIT_NAMES[split]:
        for suffix in SUFFIXES:
            p = folder / f"{stem}{suffix}"
            if p.is_file():
                return p
    return None


def load_splits(
    source: str | None,
    field_map: dict[str, str] | None = None,
    label_field: str = "label",
    explode: str | None = None,
    subset: str | None = None,
    split: str | None = None,
) -> DataSplits:
    """`source`: None (bundled demo), a folder with train/dev/test files, one file, a `datasets`
    folder, or a hub name; `subset` and `split` pick a configuration and a split of the last two."""
    from tasktune.data import datasets_source as dsrc

    if source is None:
        source = str(DEMO_DIR)
    path = Path(source)
    kw = {"field_map": field_map, "label_field": label_field, "explode": explode}
    if path.is_dir() and dsrc.is_saved_dataset(path):
        return _from_datasets(dsrc.load_saved(path, split), str(path), **kw)
    own_files = path.is_dir() and any(find_split(path, s) for s in SPLIT_NAMES)
    if (subset or split) and (own_files or path.is_file()):
        raise TasktuneError(f"{path}: --subset and --split apply to `datasets` folders and hub names, not to "
                            "files or folders of split files")
    if own_files:
        splits = {s: find_split(path, s) for s in SPLIT_NAMES}
        loaded = {s: read_examples(p, **kw) if p else [] for s, p in splits.items()}
        return DataSplits(loaded["train"], loaded["dev"], loaded["test"], str(path))
    if path.is_dir():
        if not _dataset_repo(path):
            raise TasktuneError(f"{path}: folder has no train/dev/test .jsonl, .csv, .tsv or .parquet file")
        return _from_datasets(dsrc.load_named(str(path), subset, split), str(path), **kw)
    if path.is_file() or path.suffix.lower() in SUFFIXES or "/" in source and path.parent.exists():
        rows = read_examples(path, **kw)
        return DataSplits(rows, [], [], str(path))
    parts = source.split("/")
    if subset is None and len(parts) == 2 and parts[0] in ("glue", "super_glue"):  # glue/sst2: name/subset
        source, subset = parts
    return _from_datasets(dsrc.load_named(source, subset, split), source if not subset else f"{source}/{subset}",
                          **kw)


def _dataset_repo(folder: Path) -> bool:
    """A folder laid out as a hub dataset repository (a dataset card, a data/ folder, or data files)."""
    return (folder / "README.md").is_file() or (folder / "data").is_dir() or \
        any(folder.glob("*.parquet")) or any(folder.glob("*.arrow"))


def _from_datasets(splits: dict, source: str, field_map, label_field: str, explode) -> DataSplits:
    from tasktune.data.datasets_source import dataset_splits

    out = dataset_splits(splits, source, field_map or {}, label_field, explode)
    return DataSplits(out["train"], out["dev"], out["test"], source)
