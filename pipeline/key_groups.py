"""The key-groups document (`config/key_groups.yaml`): who must test how often, validated with file and line.

Each group has an id, zh/en names and a testing cadence `every_hours`. Problems are reported as
`file:line: path: problem`, as for the rules; a refused document leaves the last good one active.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from pipeline.errors import KeyGroupsError, RulesError
from pipeline.rules import CONFIG_WORDING, pydantic_problem, read_config_text, read_yaml_with_lines

__all__ = ["KeyGroup", "KeyGroups", "KeyGroupsDocument", "load_key_groups", "parse_key_groups"]

GroupId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
#: Person state keeps NAT results for the rules horizon (16 days by default): a cadence must fit in it.
MAX_EVERY_HOURS = 336


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupName(_Doc):
    zh: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class GroupDoc(_Doc):
    id: GroupId
    name: GroupName
    every_hours: Annotated[int, Field(gt=0, le=MAX_EVERY_HOURS)]


class KeyGroupsDocument(_Doc):
    """The document as written."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    groups: Annotated[list[GroupDoc], Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class KeyGroup:
    """One key group and its testing cadence."""

    id: str
    name_zh: str
    name_en: str
    every_hours: int

    @property
    def every(self) -> timedelta:
        return timedelta(hours=self.every_hours)


@dataclass(frozen=True)
class KeyGroups:
    """A validated key-groups document, groups in document order."""

    version: str
    source: str
    groups: tuple[KeyGroup, ...]

    def get(self, group_id: str) -> KeyGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(g.id for g in self.groups)


#: the group file's own wording for its bounds and ids; everything else as the rules word it
_WORDING = {
    **CONFIG_WORDING,
    "greater_than": "was {input!r} but must be a positive number of hours",
    "less_than_equal": f"was {{input!r}} but must be at most {MAX_EVERY_HOURS} hours (two weeks)",
    "string_pattern_mismatch": "{input!r} is not a valid group id (lower-case letters, digits and '_')",
}


def _problem(error: dict[str, Any]) -> str:
    return pydantic_problem(error, _WORDING)


def parse_key_groups(text: str, source: str = "<key groups>") -> KeyGroups:
    """Validate a key-groups document given as YAML (or JSON) text; raise `KeyGroupsError` naming file and line."""
    try:
        value, located = read_yaml_with_lines(text, source)
    except RulesError as exc:
        raise KeyGroupsError(str(exc)) from None
    if not isinstance(value, dict):
        raise KeyGroupsError(f"{source}:1: the document must be a mapping with version and groups")
    problems = list(located.problems)
    try:
        doc = KeyGroupsDocument.model_validate(value)
    except ValidationError as exc:
        problems += [(tuple(e["loc"]), _problem(e)) for e in exc.errors(include_url=False)]
        doc = None
    if doc is not None:
        seen: dict[str, int] = {}
        for i, group in enumerate(doc.groups):
            if group.id in seen:
                problems.append((("groups", i, "id"), f"duplicate group id {group.id!r} (first at groups[{seen[group.id]}])"))
            seen.setdefault(group.id, i)
    if problems or doc is None:
        lines = sorted({(located.line(p), located.message(p, m)) for p, m in problems})
        head = f"{source}: key groups refused ({len(lines)} problem{'s' if len(lines) != 1 else ''})"
        raise KeyGroupsError(head + "\n" + "\n".join(f"  {text}" for _, text in lines))
    groups = tuple(KeyGroup(g.id, g.name.zh, g.name.en, g.every_hours) for g in doc.groups)
    return KeyGroups(doc.version, source, groups)


def load_key_groups(path: str | Path) -> KeyGroups:
    """Read and validate a key-groups file."""
    p = Path(path)
    text = read_config_text(p, "key-groups file", KeyGroupsError)
    return parse_key_groups(text, source=str(p))
