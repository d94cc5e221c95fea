"""One adapter per database; `load_dataset(name, root)` reads any of them into a Dataset."""

from microexpr.data.adapters import casme, casme2, casme3, fourdme, mmew, samm, smic
from microexpr.data.adapters._registry import (
    ADAPTERS,
    AdapterInfo,
    get_adapter,
    list_adapters,
    list_datasets,
    load_dataset,
    register_adapter,
)

__all__ = [
    "ADAPTERS",
    "AdapterInfo",
    "casme",
    "casme2",
    "casme3",
    "fourdme",
    "get_adapter",
    "list_adapters",
    "list_datasets",
    "load_dataset",
    "mmew",
    "register_adapter",
    "samm",
    "smic",
]
