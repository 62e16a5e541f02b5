"""User-facing errors.

Every problem a user can fix (a missing file, a bad column, an unknown config key…) is raised
as a :class:`TfbertError` with one line that names the file, row or key and what was expected.
The command-line tools print that line and exit with code 2 instead of a stack trace.
"""
from __future__ import annotations


class TfbertError(Exception):
    """An error caused by the user's input, reported as one clear line (exit code 2)."""

    exit_code = 2


class ConfigError(TfbertError):
    """A config key that does not exist or a value that is not allowed."""


class DataError(TfbertError):
    """A data file, column, row or label that cannot be used."""


class ModelError(TfbertError):
    """A model that cannot be loaded or does not match the config or checkpoint."""


class HardwareError(TfbertError):
    """A requested accelerator, SDK or strategy that is not available here."""


class OutputExistsError(TfbertError):
    """A save or export would replace another run's finished files (pass ``overwrite=True`` to allow it)."""
