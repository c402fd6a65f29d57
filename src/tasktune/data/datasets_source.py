"""Data in the `datasets` library's forms: a folder written by `save_to_disk`, a dataset repository
folder (data files laid out as on the hub), or a hub name, with `--subset` (the configuration)
and `--split` (one split, slices allowed: `train[:2000]`).

Every split's rows go through the same `rows_to_examples` as files do; ClassLabel integers become
their names; a renamed column (`--field`, `--text-field`) the dataset lacks is an error naming
the dataset and its columns, before any row is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from tasktune import TasktuneError
from tasktune.data.readers import Example, rows_to_examples

SPLIT_KEYS = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "dev32": "dev", "test": "test"}


def _datasets():
    try:
        import datasets
    except ImportError:
        raise TasktuneError("`datasets` folders and hub names need `pip install 'tasktune[hub]'`") from None
    return datasets


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by Dataset.save_to_disk or DatasetDict.save_to_disk."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def split_key(name: str) -> str | None:
    """train / dev / test for a datasets split name ("validation", "train[:100]", "test[10%:]")."""
    return SPLIT_KEYS.get(re.split(r"[\[+]", name, maxsplit=1)[0].strip())


def load_saved(folder: Path, split: str | None) -> dict:
    """{split name: Dataset} of a save_to_disk folder."""
    datasets = _datasets()
    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds for a damaged folder
        raise TasktuneError(f"{folder}: unreadable `datasets` folder ({str(e).splitlines()[0][:160]})") from None
    if isinstance(ds, datasets.Dataset):
        return {split or "train": ds}
    if split is not None:
        base = re.split(r"[\[+]", split, maxsplit=1)[0]
        if base not in ds:
            raise TasktuneError(f"{folder}: no split '{base}' (splits: {', '.join(ds)})")
        if base != split:
            raise TasktuneError(f"{folder}: --split slices apply to hub datasets; a saved folder takes a split name")
        return {split: ds[split]}
    return dict(ds.items())


def load_named(name: str, subset: str | None, split: str | None) -> dict:
    """{split name: Dataset} of a hub name or a dataset repository folder (load_dataset)."""
    datasets = _datasets()
    try:
        ds = datasets.load_dataset(name, subset, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot load"
        raise TasktuneError(f"'{name}'{f' (subset {subset})' if subset else ''}: not loadable as a dataset: "
                            f"{str(e).splitlines()[0][:200]}") from None
    if isinstance(ds, datasets.Dataset):
        return {split or "train": ds}
    return dict(ds.items())


def check_columns(splits: dict, source: str, field_map: dict[str, str]) -> None:
    for name, ds in splits.items():
        missing = [col for col in field_map if col not in ds.column_names]
        if missing:
            raise TasktuneError(f"{source}[{name}]: no column '{missing[0]}' (columns: {', '.join(ds.column_names)})")


def dataset_splits(splits: dict, source: str, field_map: dict[str, str], label_field: str,
                   explode: str | None) -> dict[str, list[Example]]:
    """train / dev / test Examples from {split name: Dataset}; splits of other names are left out."""
    check_columns(splits, source, field_map)
    out: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for name, ds in splits.items():
        key = split_key(name)
        if key is None:
            continue
        names = getattr(ds.features.get(label_field), "names", None)

        def rows(ds=ds, name=name, names=names):
            for i, row in enumerate(ds):
                label = row.get(label_field)
                if names is not None and isinstance(label, int):
                    row = {**row, label_field: names[label] if label >= 0 else None}
                yield f"{source}[{name}]:{i}", row

        out[key] += rows_to_examples(rows(), f"{source}[{name}]", field_map=field_map, label_field=label_field,
                                     explode=explode)
    if not any(out.values()):
        raise TasktuneError(f"{source}: no train, validation or test split (splits: {', '.join(splits)})")
    return out
