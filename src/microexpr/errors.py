"""Exceptions raised by microexpr; each message says what is wrong and how to fix it."""

from __future__ import annotations


class MicroexprError(Exception):
    """Base class for every error the toolkit raises on purpose."""


class DatasetError(MicroexprError):
    """A database folder or annotation file cannot be read as the named database."""


class ManifestError(MicroexprError):
    """A manifest CSV is malformed (missing column, bad row, unreadable input)."""


class LabelSchemeError(MicroexprError):
    """A label scheme is unknown or does not apply to the clips it was given."""


class ConfigError(MicroexprError):
    """An argument or configuration value is invalid."""


class InputShapeError(MicroexprError):
    """Inputs do not have the shape a model or representation expects."""


class FaceNotFoundError(MicroexprError):
    """No usable face was found where one was needed (names the file or clip)."""
