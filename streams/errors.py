"""Errors raised in `streams/`: the in-process transport's, and the web layer's refusals.

Domain errors live in `pipeline/errors.py`; `streams/` maps those to dead letters or HTTP codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from faust.exceptions import ImproperlyConfigured

__all__ = [
    "ApiProblem",
    "Denied",
    "ExactlyOnceUnsupported",
    "MemoryTransportError",
    "PartitionOutOfRange",
    "TopicPartitionsMismatch",
    "UnknownTopic",
]


class MemoryTransportError(Exception):
    """Base class of errors raised by the in-process broker and its driver."""


class TopicPartitionsMismatch(MemoryTransportError):
    """A topic was created again with a different partition count."""


class UnknownTopic(MemoryTransportError):
    """The topic does not exist on the in-process broker."""


class PartitionOutOfRange(MemoryTransportError):
    """A partition number outside ``0 .. partitions - 1`` of its topic."""


class ExactlyOnceUnsupported(MemoryTransportError, ImproperlyConfigured):
    """``processing_guarantee='exactly_once'`` was asked of the ``memory://`` transport."""


@dataclass(frozen=True)
class Denied(Exception):
    """Why a request is refused: 401 (who are you?), 403 (not yours) or 503 (no access file on kafka://)."""

    status: int
    problem: str


class ApiProblem(Exception):
    """A request that cannot be served: HTTP status, a sentence, and per-field problems."""

    def __init__(self, status: int, problem: str, fields: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(problem)
        self.status, self.problem, self.fields, self.headers = status, problem, fields or [], headers or {}
