"""Validation of model parameters (`--param key=value`): each value against its default's type
and known ranges, so that a bad value fails before any work with a one-line message.

A rule is a callable taking the user's value and returning it normalised (lists -> tuples,
ints -> floats where a float is expected), or raising ValueError whose text says what the
value must be ("a number in [0, 1)"). `rule_for(name, default)` gives the generic rule of a
parameter; a ModelSpec's `param_rules` replace it for parameters that need more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Rule = Callable[[Any], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _as_number(value: Any) -> float:
    """A finite float from an int, float or numeric string ("5e-5", which YAML leaves a
    string); ValueError otherwise."""
    if isinstance(value, bool | np.bool_):
        raise ValueError("a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("a number") from None
    if not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError("a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("a finite number")
    return value


def as_int(value: Any) -> int:
    """An int from an int, an integral float (40.0) or an integer string; ValueError else."""
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    raise ValueError("an integer")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValueError("true or false")


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An int in low..high (inclusive; None: unbounded)."""
    what = "an integer" + (f" >= {low}" if low is not None and high is None else "") + (
        f" in {low}..{high}" if low is not None and high is not None else "")

    def check(value: Any) -> int:
        try:
            value = as_int(value)
        except ValueError:
            raise ValueError(what) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(what)
        return value
    return check


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Rule:
    """A float in the interval [low, high] (either end open, or None: unbounded)."""
    if low is not None and high is not None:
        what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        what = f"a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        what = "a number"

    def check(value: Any) -> float:
        try:
            value = _as_number(value)
        except ValueError:
            raise ValueError(what) from None
        if low is not None and (value < low or (low_open and value == low)):
            raise ValueError(what)
        if high is not None and (value > high or (high_open and value == high)):
            raise ValueError(what)
        return value
    return check


def one_of(*choices: Any) -> Rule:
    def check(value: Any) -> Any:
        if isinstance(value, str | bool | type(None)) and value in choices:
            return value
        raise ValueError(f"one of {list(choices)}")
    return check


def optional(rule: Rule, what: str = "") -> Rule:
    """None, or a value `rule` accepts."""
    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return rule(value)
        except ValueError as error:
            raise ValueError(f"None or {what or error}") from None
    return check


def describe(rule: Rule) -> str:
    """What `rule` accepts, in words (the message it gives for a value it cannot take)."""
    try:
        rule(object())
    except (ValueError, TypeError) as error:
        return str(error) or "a valid value"
    return "any value"


def sequence(element: Rule, length: int | None = None, *, scalar: bool = False,
             what: str = "") -> Rule:
    """A list / tuple (of `length` items, when given) whose items `element` accepts, as a
    tuple; with `scalar`, one item is accepted too (kept as it is)."""
    shape = f"a list of {length} item(s)" if length else "a list"
    what = what or (f"{shape} ({describe(element)} each)"
                    + (", or one such value" if scalar else ""))

    def check(value: Any) -> Any:
        try:
            if scalar and not isinstance(value, list | tuple | str):
                return element(value)
            if not isinstance(value, list | tuple) or (length is not None and
                                                       len(value) != length):
                raise ValueError(what)
            return tuple(element(item) for item in value)
        except ValueError:
            raise ValueError(what) from None
    return check


def either(*rules: Rule, what: str) -> Rule:
    """The value of the first rule that accepts it."""
    def check(value: Any) -> Any:
        for rule in rules:
            try:
                return rule(value)
            except ValueError:
                continue
        raise ValueError(what)
    return check


def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("a string")


def anything(value: Any) -> Any:
    return value


POSITIVE_INT = integer(1)

# Rules by parameter name, for every model that has a parameter of that name.
NAME_RULES: Mapping[str, Rule] = {
    "C": number(0.0, low_open=True),
    "calibration_folds": integer(2),
    "class_weight": optional(one_of("balanced"), "'balanced'"),
    "blocks": sequence(POSITIVE_INT, 2, scalar=True,
                       what="a positive integer or a [rows, cols] pair of them"),
}


def rule_for(name: str, default: Any) -> Rule:
    """The generic rule of parameter `name` with default `default`: dropout in [0, 1); C > 0;
    ints (sizes, widths, counts) >= 1; floats any number; bools true/false; strings strings;
    lists / tuples of items of the default's item type."""
    if name in NAME_RULES:
        return NAME_RULES[name]
    if name.endswith("dropout"):
        return number(0.0, 1.0, high_open=True)
    if isinstance(default, bool | np.bool_):
        return as_bool
    if _is_int(default):
        return POSITIVE_INT
    if isinstance(default, float | np.floating):
        return number()
    if isinstance(default, str):
        return text
    if isinstance(default, list | tuple):
        if not default:
            return sequence(anything)
        return sequence(rule_for(f"{name}[]", default[0]))
    return anything


def check_value(model: str, name: str, value: Any, default: Any,
                rule: Rule | None = None) -> Any:
    """`value` normalised by its rule; ValueError -> the one-line message for ConfigError."""
    rule = rule or rule_for(name, default)
    try:
        return rule(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"parameter {name}={value!r} of model {model} is invalid: it must be "
                         f"{error} (default {default!r}; set it with --param {name}=VALUE)"
                         ) from None
