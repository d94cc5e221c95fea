"""Plain data for YAML and JSON files: what configs, metrics and summaries are written as."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd


def plain_data(value: Any) -> Any:
    """`value` as plain data: mappings as dicts with string keys, tuples, lists and sets as
    lists, numpy scalars unboxed, paths as strings, missing and non-finite numbers as None."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_data(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, PurePath):
        return str(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
