"""What an action obliges a person to do: tests on given days or within hours, a duration, what releases it.

Declared per action in `config/rules.yaml` under `obligations:`; validated here so `epiflow rules check`
refuses a broken schedule (unknown key, day 0, a gap longer than the window) with file, line and problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Anchor", "Obligations", "ObligationsDoc", "ReleasedBy", "compile_obligations"]

#: Day 1 of the episode: the calendar day of the last exposure, or of arrival.
Anchor = Literal["exposure", "arrival"]
#: `schedule`: the duration has passed and every required test is met; `tests`: the tests are met;
#: `discharge`: released by hand (a designated hospital discharges), never by the stream.
ReleasedBy = Literal["schedule", "tests", "discharge"]

Path_ = tuple[str | int, ...]


class ObligationsDoc(BaseModel):
    """`obligations:` of one action, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day_one: Anchor = "exposure"
    duration_days: Annotated[int, Field(ge=0)] | None = None
    test_days: list[int] = []
    tests: Annotated[int, Field(ge=0)] = 0
    within_hours: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    min_gap_hours: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0
    released_by: ReleasedBy = "schedule"


@dataclass(frozen=True, slots=True)
class Obligations:
    """A compiled schedule: either tests on days of the episode, or `tests` samples within `within` seconds."""

    day_one: Anchor
    duration_days: int | None
    test_days: tuple[int, ...]
    tests: int
    within: int | None
    min_gap: int
    released_by: ReleasedBy

    @property
    def counted(self) -> bool:
        """True when the tests are counted in an hour window rather than due on given days."""
        return self.within is not None


def compile_obligations(doc: ObligationsDoc, path: Path_) -> tuple[Obligations | None, list[tuple[Path_, str]]]:
    """The compiled schedule, or None and the problems found (each with the path it names)."""
    problems: list[tuple[Path_, str]] = []
    days = doc.test_days
    if days and (doc.tests or doc.within_hours is not None):
        problems.append((path + ("test_days",), "give either test_days (tests on days of the episode) or "
                                               "tests + within_hours (tests counted in a window), not both"))
    for i, day in enumerate(days):
        if day < 1:
            problems.append((path + ("test_days", i), f"day {day} does not exist: day 1 is the day of "
                                                      f"{'the last exposure' if doc.day_one == 'exposure' else 'arrival'}"))
        elif doc.duration_days is not None and day > doc.duration_days:
            problems.append((path + ("test_days", i), f"day {day} is after the end of the {doc.duration_days}-day duration"))
    if len(set(days)) != len(days):
        problems.append((path + ("test_days",), f"a day is listed twice in {days}"))
    if days and doc.duration_days is None:
        problems.append((path + ("duration_days",), "test_days need a duration_days (the episode they fall in)"))
    if doc.tests and doc.within_hours is None:
        problems.append((path + ("within_hours",), f"tests: {doc.tests} needs within_hours (the window they are counted in)"))
    if doc.within_hours is not None and not doc.tests:
        problems.append((path + ("tests",), "within_hours needs tests (how many negative samples the window must hold)"))
    if doc.within_hours is not None and doc.min_gap_hours > doc.within_hours:
        problems.append((path + ("min_gap_hours",), f"a gap of {doc.min_gap_hours:g} h is longer than the "
                                                    f"{doc.within_hours:g} h window the tests must fit in"))
    elif doc.within_hours is not None and doc.tests > 1 and (doc.tests - 1) * doc.min_gap_hours > doc.within_hours:
        problems.append((path + ("min_gap_hours",), f"{doc.tests} tests {doc.min_gap_hours:g} h apart do not fit in "
                                                    f"{doc.within_hours:g} h"))
    if doc.min_gap_hours and not doc.tests:
        problems.append((path + ("min_gap_hours",), "min_gap_hours applies to tests counted in a window (tests + within_hours)"))
    if doc.released_by == "schedule" and doc.duration_days is None:
        problems.append((path + ("released_by",), "released_by: schedule needs a duration_days"))
    if doc.released_by == "tests" and not (days or doc.tests):
        problems.append((path + ("released_by",), "released_by: tests needs tests to be met (test_days or tests)"))
    if problems:
        return None, problems
    within = None if doc.within_hours is None else int(doc.within_hours * 3_600)
    return Obligations(doc.day_one, doc.duration_days, tuple(sorted(days)), doc.tests, within,
                       int(doc.min_gap_hours * 3_600), doc.released_by), []
