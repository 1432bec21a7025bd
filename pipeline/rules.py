"""The rules document epidemiologists edit (`config/rules.yaml`): loading, validation, compilation.

YAML is composed to nodes first so every problem — unknown key, unknown action or level, negative
window, duplicate id — is reported as `file:line: path: problem`. A loaded `Rules` holds compiled
condition closures, so evaluating a person never re-reads or re-validates the document.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from pipeline.conditions import Compiled, ConditionProblem, Windows, compile_condition
from pipeline.contacts import ContactRule, ContactRules, ContactsDoc
from pipeline.errors import RulesError
from pipeline.obligations import Obligations, ObligationsDoc, compile_obligations
from pipeline.requests import RequestsDoc

__all__ = [
    "CLEAR",
    "Action",
    "CompiledRule",
    "Rules",
    "RulesDocument",
    "load_rules",
    "parse_rules",
    "read_yaml_with_lines",
]

#: The action every document must define: nothing applies.
CLEAR = "clear"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)]
Days = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowsDoc(_Doc):
    lookback_days: Days = 14
    nat_valid_hours: Days = 48
    pre_designation_days: Days = 0


class ActionText(_Doc):
    zh: Annotated[str, StringConstraints(min_length=1)]
    en: Annotated[str, StringConstraints(min_length=1)]


class ActionDoc(_Doc):
    name: Name
    severity: Annotated[int, Field(ge=0)]
    duration_days: Annotated[int, Field(ge=0)] | None = None
    accept_within_minutes: Annotated[int, Field(ge=0)] | None = None
    text: ActionText
    #: what the action obliges (tests, duration, release); an action without it is not managed after triage
    obligations: ObligationsDoc | None = None


class OverridesDoc(_Doc):
    duration_days: Annotated[int, Field(ge=0)] | None = None
    accept_within_minutes: Annotated[int, Field(ge=0)] | None = None


class ThenDoc(_Doc):
    action: Name
    overrides: OverridesDoc | None = None


class RuleDoc(_Doc):
    id: RuleId
    description: Annotated[str, StringConstraints(min_length=1)]
    when: dict[str, Any]
    then: ThenDoc


class RulesDocument(_Doc):
    """The document as written; see `Rules` for the compiled form."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    timezone: str
    windows: WindowsDoc = WindowsDoc()
    actions: Annotated[list[ActionDoc], Field(min_length=1)]
    rules: list[RuleDoc]
    #: The scenario file `epiflow rules check` runs, relative to this document's file.
    scenarios: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    #: Who is a close or secondary contact of a positive case, and the action each gets (absent: no tracing).
    contacts: ContactsDoc | None = None
    #: Within how many hours a request of each kind from a person under management must be answered.
    requests: RequestsDoc = RequestsDoc()


@dataclass(frozen=True, slots=True)
class Action:
    """An action with its severity, duration and acceptance deadline (minutes)."""

    name: str
    severity: int
    duration_days: int | None
    accept_within_minutes: int | None
    text_zh: str
    text_en: str
    obligations: Obligations | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    description: str
    action: Action
    check: Compiled


@dataclass(frozen=True, eq=False)
class Rules:
    """A validated, compiled rules document. `horizon` is how long person state must keep facts."""

    document: RulesDocument
    source: str
    version: str
    tz: ZoneInfo
    windows: Windows
    actions: dict[str, Action]
    rules: tuple[CompiledRule, ...]
    clear: Action
    horizon: timedelta
    contacts: ContactRules | None = None

    @property
    def by_severity(self) -> list[Action]:
        return sorted(self.actions.values(), key=lambda a: -a.severity)


Path_ = tuple[str | int, ...]


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


class _Located:
    """Python value of a YAML document plus the line of every key and item, by path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.problems: list[tuple[Path_, str]] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append((path, f"line {key_node.start_mark.line + 1}: a key must be a plain scalar"))
                    continue
                key = self._constructor.construct_object(key_node)
                if key in out:
                    self.lines[path + (key,)] = key_node.start_mark.line + 1
                    self.problems.append((path + (key,), f"duplicate key {key!r}"))
                    continue
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,))
                self.lines[path + (key,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._constructor.construct_object(node)

    def line(self, path: Path_) -> int:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def message(self, path: Path_, problem: str) -> str:
        return f"{self.source}:{self.line(path)}: {_dotted(path)}: {problem}"


def read_yaml_with_lines(text: str, source: str) -> tuple[Any, _Located]:
    """Parse YAML text keeping line numbers; raises `RulesError` naming the file and line on bad YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise RulesError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 1
        shown = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise RulesError(f"{source}:{line}: not valid YAML: {exc.reason} (character {shown})") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    located = _Located(source)
    if node is None:
        raise RulesError(f"{source}:1: the document is empty")
    try:
        value = located.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise RulesError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    return value, located


def pydantic_problem(error: dict[str, Any]) -> str:
    """A config validation error as a short sentence (unknown or missing key, bad value), no stack of pydantic text."""
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"missing key {loc[-1]!r}"
    if kind == "greater_than":
        return f"was {error.get('input')!r} but must be greater than {error.get('ctx', {}).get('gt', 0):g}"
    if kind == "less_than_equal":
        return f"was {error.get('input')!r} but must be at most {error.get('ctx', {}).get('le', 0):g}"
    if kind == "greater_than_equal":
        return f"was {error.get('input')!r} but must be zero or positive (negative values are refused)"
    if kind == "string_pattern_mismatch":
        return f"{error.get('input')!r} is not a valid name (lower-case letters, digits and '_')"
    return error["msg"]


def _check(document: dict[str, Any], located: _Located) -> Rules:
    problems = list(located.problems)
    try:
        doc = RulesDocument.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append((tuple(error["loc"]), pydantic_problem(error)))
        raise RulesError(_report(located, problems)) from None
    try:
        tz = ZoneInfo(doc.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((("timezone",), f"unknown time zone {doc.timezone!r} (expected an IANA zone such as 'Asia/Shanghai')"))
        tz = ZoneInfo("UTC")
    actions: dict[str, Action] = {}
    severities: dict[int, str] = {}
    for i, a in enumerate(doc.actions):
        if a.name in actions:
            problems.append((("actions", i, "name"), f"duplicate action name {a.name!r}"))
            continue
        if a.severity in severities:
            problems.append((("actions", i, "severity"), f"severity {a.severity} is already used by {severities[a.severity]!r}; severities must differ so the most severe action is clear"))
        severities[a.severity] = a.name
        obligations = None
        if a.obligations is not None:
            obligations, found = compile_obligations(a.obligations, ("actions", i, "obligations"))
            problems += found
        actions[a.name] = Action(a.name, a.severity, a.duration_days, a.accept_within_minutes, a.text.zh, a.text.en,
                                 obligations)
    if CLEAR not in actions:
        problems.append((("actions",), f"no action named {CLEAR!r} (what a person gets when no rule applies)"))
    elif actions[CLEAR].severity != min(a.severity for a in actions.values()):
        problems.append((("actions",), f"{CLEAR!r} must have the lowest severity"))
    w = doc.windows
    windows = Windows(int(w.lookback_days * 86_400), int(w.nat_valid_hours * 3_600), int(w.pre_designation_days * 86_400))
    compiled: list[CompiledRule] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(doc.rules):
        if rule.id in seen:
            problems.append((("rules", i, "id"), f"duplicate rule id {rule.id!r} (first at rules[{seen[rule.id]}])"))
        seen.setdefault(rule.id, i)
        action = actions.get(rule.then.action)
        if action is None:
            problems.append((("rules", i, "then", "action"), f"unknown action {rule.then.action!r} (expected one of {', '.join(actions)})"))
            continue
        if rule.then.overrides is not None:
            o = rule.then.overrides
            action = Action(
                action.name,
                action.severity,
                action.duration_days if o.duration_days is None else o.duration_days,
                action.accept_within_minutes if o.accept_within_minutes is None else o.accept_within_minutes,
                action.text_zh,
                action.text_en,
                action.obligations,
            )
        try:
            check = compile_condition(rule.when, ("rules", i, "when"), windows)
        except ConditionProblem as problem:
            problems.append((problem.path, problem.message))
            continue
        compiled.append(CompiledRule(rule.id, rule.description, action, check))
    contacts = _contact_rules(doc, actions, seen, problems)
    if problems:
        raise RulesError(_report(located, problems))
    horizon = timedelta(seconds=windows.lookback + windows.nat_valid)
    return Rules(doc, located.source, doc.version, tz, windows, actions, tuple(compiled), actions[CLEAR], horizon, contacts)


def _contact_rules(
    doc: RulesDocument, actions: dict[str, Action], rule_ids: dict[str, int], problems: list[tuple[Path_, str]]
) -> ContactRules | None:
    """Compile the `contacts:` section, adding its problems (unknown action, clashing or repeated id) to `problems`."""
    if doc.contacts is None:
        return None
    compiled: list[ContactRule] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(doc.contacts.rules):
        where = ("contacts", "rules", i)
        if r.id in rule_ids:
            problems.append((where + ("id",), f"contact rule id {r.id!r} is already a rule id (rules[{rule_ids[r.id]}]); reasons must tell them apart"))
        if r.id in seen:
            problems.append((where + ("id",), f"duplicate contact rule id {r.id!r} (first at contacts.rules[{seen[r.id]}])"))
        seen.setdefault(r.id, i)
        action = actions.get(r.action)
        if action is None:
            problems.append((where + ("action",), f"unknown action {r.action!r} (expected one of {', '.join(actions)})"))
            continue
        if action.name == CLEAR:
            problems.append((where + ("action",), f"a contact rule cannot give {CLEAR!r}; name the action contacts get"))
            continue
        compiled.append(ContactRule(r.id, r.description, r.degree, r.same, float(r.within_m), int(r.overlap_minutes * 60), action))
    return ContactRules(tuple(compiled), int(doc.contacts.days_before_sample * 86_400))


def _report(located: _Located, problems: list[tuple[Path_, str]]) -> str:
    lines = [text for _, text in sorted({(located.line(p), located.message(p, m)) for p, m in problems})]
    head = f"{located.source}: rules document refused ({len(lines)} problem{'s' if len(lines) != 1 else ''})"
    return head + "\n" + "\n".join(f"  {line}" for line in lines)


def _deep_line(text: str, limit: int = 100) -> int:
    """Line where the YAML nesting first goes `limit` levels deep (the event parser does not recurse).

    Stops there: PyYAML's scanner slows down with every flow level, so the scan never goes deeper.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth >= limit:
                    return event.start_mark.line + 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return 1


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Validate and compile a rules document given as YAML (or JSON) text."""
    if not isinstance(text, str):
        raise RulesError(f"{source}: expected YAML text, got {type(text).__name__}")
    try:
        value, located = read_yaml_with_lines(text, source)
        if not isinstance(value, dict):
            raise RulesError(f"{source}:1: the document must be a mapping with version, timezone, windows, actions, rules")
        return _check(value, located)
    except RecursionError:
        raise RulesError(
            f"{source}:{_deep_line(text)}: the document is nested too deeply to read; flatten the conditions"
        ) from None


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> Rules:
    return parse_rules(Path(path).read_text(encoding="utf-8"), source=path)


def load_rules(path: str | Path) -> Rules:
    """Load a rules file (compiled once per file version; edits on disk are picked up)."""
    p = Path(path)
    try:
        stat = p.stat()
    except OSError as exc:
        raise RulesError(f"{p}: cannot read the rules file: {exc.strerror}") from None
    return _load_cached(str(p), stat.st_mtime_ns, stat.st_size)
