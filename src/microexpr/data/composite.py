"""The MEGC 2019 composite database: SMIC-HS + CASME II + SAMM under one 3-class scheme."""

from __future__ import annotations

from pathlib import Path

from microexpr.data.clips import Dataset, concat_datasets

COMPOSITE_PARTS = ("smic", "casme2", "samm")
COMPOSITE_SCHEME = "composite3"


def load_composite(smic: str | Path, casme2: str | Path, samm: str | Path) -> Dataset:
    """Load the three databases, label them with `composite3` and join them (68 subjects).

    `Dataset.class_counts()` of the result gives the per-database class counts (250/109/83 on
    the full releases); the clips each part drops are in `problems`.
    """
    from microexpr.data.adapters import load_dataset

    roots = {"smic": smic, "casme2": casme2, "samm": samm}
    parts = [load_dataset(name, roots[name], labels=COMPOSITE_SCHEME) for name in COMPOSITE_PARTS]
    return concat_datasets(parts, name="composite")
