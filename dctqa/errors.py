"""One family of exceptions, with messages written for users.

The CLI prints any :class:`DctqaError` as ``error: <message>`` and exits non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class DctqaError(Exception):
    """Base class of every error dctqa raises on purpose."""


class InputError(DctqaError, ValueError):
    """Frames, arrays or arguments that do not satisfy the documented contract."""


class OutputError(InputError):
    """An output path that cannot or must not be written (see :mod:`dctqa.fileio`)."""


class VideoError(DctqaError):
    """A file that cannot be opened, decoded or encoded."""


class BackboneError(DctqaError):
    """Unknown backbone name or a model file that cannot be used."""


class WeightsError(BackboneError):
    """Detector weights that are missing or do not fit the model."""


class ConfigError(DctqaError, ValueError):
    """An environment variable or setting of dctqa with a value that cannot be used."""


class ResourceError(DctqaError, MemoryError):
    """Not enough memory (host or GPU) for the work asked for, or a size over the configured cap."""
