"""One adapter per database; `load_dataset(name, root)` reads any of them into a Dataset.

Micro-expression databases: casme, casme2, casme3, samm, smic, mmew, 4dme. Macro-expression
data (for macro -> micro transfer): ckplus (alias ck+), mmi, clip_folder."""

from microexpr.data.adapters import (
    casme,
    casme2,
    casme3,
    ckplus,
    clip_folder,
    fourdme,
    mmew,
    mmi,
    samm,
    smic,
)
from microexpr.data.adapters._registry import (
    ADAPTERS,
    ALIASES,
    AdapterInfo,
    get_adapter,
    list_adapters,
    list_datasets,
    load_dataset,
    register_adapter,
)

__all__ = [
    "ADAPTERS",
    "ALIASES",
    "AdapterInfo",
    "casme",
    "casme2",
    "casme3",
    "ckplus",
    "clip_folder",
    "fourdme",
    "get_adapter",
    "list_adapters",
    "list_datasets",
    "load_dataset",
    "mmew",
    "mmi",
    "register_adapter",
    "samm",
    "smic",
]
