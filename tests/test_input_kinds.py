"""Everything that lists the input kinds iterates `pipeline.inputs`: only the registry, the contract module,
the state mapping and the rules conditions may spell out all of today's kinds."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: each of today's kinds, by its type name or its topic name
KIND_NAMES = (re.compile(r"declaration"), re.compile(r"checkpoint[_-]scan"), re.compile(r"nat[_-]result"))
ALLOWED = {"pipeline/inputs.py", "pipeline/events.py", "pipeline/state.py", "pipeline/conditions.py"}


def test_at_most_the_registry_contracts_state_and_conditions_name_every_input_kind() -> None:
    naming_all = {
        path.relative_to(ROOT).as_posix()
        for folder in ("pipeline", "streams", "geo", "tools")
        for path in (ROOT / folder).rglob("*.py")
        if all(name.search(path.read_text(encoding="utf-8")) for name in KIND_NAMES)
    }
    assert naming_all <= ALLOWED, f"list the kinds from pipeline.inputs instead: {sorted(naming_all - ALLOWED)}"
    assert "pipeline/inputs.py" in naming_all
