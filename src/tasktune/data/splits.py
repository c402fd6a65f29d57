"""A dataset's splits (train, dev, test), from a file, a folder of splits, the bundled demo, or a hub dataset."""

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
) -> DataSplits:
    """`source`: None (bundled demo), a folder with train/dev/test files, one file, or a hub name."""
    if source is None:
        source = str(DEMO_DIR)
    path = Path(source)
    kw = {"field_map": field_map, "label_field": label_field, "explode": explode}
    if path.is_dir():
        splits = {s: find_split(path, s) for s in SPLIT_NAMES}
        if not any(splits.values()):
            raise TasktuneError(f"{path}: folder has no train/dev/test .jsonl, .csv or .tsv file")
        loaded = {s: read_examples(p, **kw) if p else [] for s, p in splits.items()}
        return DataSplits(loaded["train"], loaded["dev"], loaded["test"], str(path))
    if path.is_file() or path.suffix.lower() in SUFFIXES or "/" in source and path.parent.exists():
        rows = read_examples(path, **kw)
        return DataSplits(rows, [], [], str(path))
    return _load_hub(source, field_map or {}, label_field)


def _load_hub(name: str, field_map: dict[str, str], label_field: str) -> DataSplits:
    """A Hugging Face dataset name such as `glue/sst2` (needs network and `datasets`)."""
    try:
        import datasets
    except ImportError:
        raise TasktuneError(f"'{name}' is not a file or folder; hub datasets need `pip install datasets`") from None
    parts = name.split("/")
    args = ("/".join(parts[:-1]), parts[-1]) if len(parts) > 1 and parts[0] in ("glue", "super_glue") else (name,)
    try:
        ds = datasets.load_dataset(*args)
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot load"
        raise TasktuneError(f"'{name}': not a local file or folder, and the hub load failed: "
                            f"{str(e).splitlines()[0]}") from None
    out: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for split_name, split in ds.items():
        key = next((k for k, names in SPLIT_NAMES.items() if split_name in names), None)
        if key is None:
            continue
        feature = split.features.get(label_field)
        names = getattr(feature, "names", None)
        for i, row in enumerate(split):
            row = {field_map.get(k, k): v for k, v in row.items()}
            label = row.pop(label_field, None)
            if names is not None and isinstance(label, int):
                label = names[label] if label >= 0 else None
            fields = {k: str(v) for k, v in row.items() if isinstance(v, (str, int, float))}
            out[key].append(Example(fields, None if label is None else str(label), f"{name}[{split_name}]:{i}"))
    return DataSplits(out["train"], out["dev"], out["test"], name)
