"""Domain errors: one base, one class per condition; `streams/` maps them to dead letters or HTTP codes."""

from __future__ import annotations

__all__ = [
    "CaseError", "KeyGroupsError", "PipelineError", "RejectedEvent", "RulesError", "SettingsError", "SimulationError",
    "StateError",
]


class PipelineError(Exception):
    """Base of every error raised by `pipeline`."""


class RejectedEvent(PipelineError):
    """An input that cannot be used: `reason` is a short code for grouping, `detail` says what is wrong.

    Neither ever contains a raw resident ID number. `fields` lists (field path, problem) where the
    schema says which fields are wrong, so the API answers per field without validating again.
    """

    def __init__(self, reason: str, detail: str, fields: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.fields = fields


class RulesError(PipelineError):
    """A rules document that does not validate; the message names the file, line and problem."""


class SettingsError(PipelineError):
    """Settings that do not validate; the message names the source and the key."""


class StateError(PipelineError):
    """A person state that cannot be built or decoded, or an event for another person."""


class CaseError(PipelineError):
    """A case event that does not fit the case it is applied to."""


class SimulationError(PipelineError):
    """Simulator arguments or sample geography that cannot be used."""


class KeyGroupsError(PipelineError):
    """A key-groups document that does not validate; the message names the file, line and problem."""
