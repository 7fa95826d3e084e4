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


class ServeError(DctqaError):
    """A frame pair submitted to :class:`dctqa.StreamScorer` that was not scored."""


class ScorerClosedError(ServeError):
    """The scorer was closed before (or while) the pair could be scored."""


class QueueFullError(ServeError):
    """The queue stayed full for the whole ``timeout`` of a blocking submit."""


class DroppedError(ServeError):
    """The pair was dropped (oldest first) to make room for newer ones (``when_full="drop_oldest"``)."""


class ScoringError(ServeError):
    """The scorer raised something other than a :class:`DctqaError` for this pair (see ``__cause__``)."""
