"""Dashboard tallies: one tally per worker's share, merged, equal the tally and the summary of all the cases."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.reports import district_summary
from pipeline.tally import Tally, merge, summary, tally_cases

T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=40)
ACTIONS = {"hold": 30, "transfer": 60, "watch": 10, "clear": 0}


def _cases(n: int, seed: int) -> list[tuple[Case, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        action = rng.choice(list(ACTIONS))
        due = None if rng.random() < 0.1 else T0 + timedelta(minutes=rng.randint(0, 80))
        done = rng.random()
        extra = {}
        if done < 0.2:
            extra["resolved_at"] = T0 + timedelta(minutes=5)
        elif done < 0.3:
            extra = {"resolved_at": T0 + timedelta(minutes=5), "closed_reason": "cleared by rules"}
        elif done < 0.5:
            extra["accepted_at"] = T0 + timedelta(minutes=1)
        case = Case(case_id=f"case-{seed}-{i}", person_key=f"k{i}", community=f"C{rng.randint(1, 6)}",
                    street=rng.choice(["S1", "S2", None]), action=action, severity=ACTIONS[action], opened_at=T0,
                    due_at=due, **extra)
        out.append((case, {"masked_id": f"330***********{i:04d}"}))
    return out


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_merged_shares_equal_the_whole(workers: int) -> None:
    cases = _cases(400, seed=workers)
    shares = [cases[i::workers] for i in range(workers)]
    counters = [{"dead_letters": {"bad_id": float(i + 1)}, "counts": {"inputs": 10.0}} for i in range(workers)]
    merged = merge(Tally.from_json(tally_cases(s, NOW, c).to_json()) for s, c in zip(shares, counters, strict=True))
    whole = tally_cases(cases, NOW)
    for name in ("cases_total", "cases_resolved", "cases_closed", "open_by_action", "open_by_community",
                 "overdue_by_community", "open_by_severity", "cases_open"):
        assert getattr(merged, name) == getattr(whole, name), name
    assert sorted(o.case_id for o in merged.overdue) == sorted(o.case_id for o in whole.overdue)
    assert merged.counters["dead_letters"]["bad_id"] == sum(range(1, workers + 1))
    assert merged.counters["counts"]["inputs"] == 10.0 * workers
    names = {f"C{i}": f"社区{i}" for i in range(1, 7)}
    streets = {f"C{i}": "S1" if i < 4 else "S2" for i in range(1, 7)}
    got = summary(merged, NOW, 60, names=names, streets=streets, action_texts={"hold": "暂缓"})
    messages = {c.case_id: m for c, m in cases}
    assert got == district_summary([c for c, _ in cases], NOW, 60, messages=messages, names=names, streets=streets,
                                   action_texts={"hold": "暂缓"})
    assert got["cases_overdue"] > 0 and got["cases_open"] > 0  # the sample exercises what is compared


def test_a_tally_counts_open_overdue_and_the_worst_open_severity() -> None:
    late = Case(case_id="a", person_key="k", community="C1", street="S1", action="transfer", severity=60, opened_at=T0,
                due_at=T0 + timedelta(minutes=10))
    taken = late.model_copy(update={"case_id": "b", "accepted_at": T0})
    done = late.model_copy(update={"case_id": "c", "resolved_at": T0})
    tally = tally_cases([(late, {"masked_id": "m"}), (taken, {}), (done, {})], NOW)
    assert (tally.cases_total, tally.cases_open, tally.cases_resolved) == (3, 2, 1)
    assert tally.overdue_by_community == {"C1": 1} and [o.case_id for o in tally.overdue] == ["a"]
    assert tally.open_by_severity == {"C1": {60: 2}}
    assert summary(tally, NOW, 60)["colours"] == {"C1": "red"}


def test_a_tally_that_is_not_one_is_refused_by_name() -> None:
    with pytest.raises(PipelineError, match="not a dashboard tally"):
        Tally.from_json({"cases_total": 1})
    with pytest.raises(PipelineError, match="timezone-aware"):
        tally_cases([], datetime(2022, 6, 20))
