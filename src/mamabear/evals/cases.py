"""An eval's case file (``evals/NAME.yaml``): the cases a crew or a mission is measured on, and what each must meet.

```yaml
crew: research                 # the crew (the command line's CREW wins); or a case's `mission:` goal
judge: model_coordinator       # whose model scores the judged checks (default: missions.yaml's judge)
margin: {pass_rate: 0.1, score: 1.0}   # how far below the baseline is a regression (--baseline)
cases:
  - name: bees
    inputs: {topic: honey bees}
    checks:
      - contains: honey
      - regex: "(?i)sources?:"
      - json_schema: {type: object, required: [summary]}   # the output is JSON of this schema
      - command: test -f report.md                          # exits 0 in the run's sandbox session
      - judge: The report names at least two sources        # scored 1-10 by the judge, with its reason
        pass_at: 7
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError

KINDS = ("contains", "regex", "json_schema", "command", "judge")
PASS_AT = 7


@dataclass(frozen=True)
class Check:
    kind: str  # one of KINDS
    value: Any  # the text, pattern, schema, command or rubric
    pass_at: int = PASS_AT  # a judged check passes at this score or above

    def label(self) -> str:
        shown = "schema" if self.kind == "json_schema" else " ".join(str(self.value).split())
        return f"{self.kind}: {shown[:60]}"


@dataclass(frozen=True)
class Case:
    name: str
    inputs: dict[str, str]
    mission: str | None  # a mission's goal, instead of the crew
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class CaseFile:
    name: str  # the file's stem: what results and baselines are filed under
    path: Path
    crew: str | None
    cases: tuple[Case, ...]
    judge: str | None = None
    margin_pass_rate: float = 0.1
    margin_score: float = 1.0


def load(path: Path) -> CaseFile:
    if not path.is_file():
        raise ConfigError(f"{path}: no such case file; give the path of an evals/NAME.yaml.")
    doc = yamlfile.load(path)
    if not isinstance(doc, YamlMapping):
        raise ConfigError(f"{path}:1: a case file is a mapping with `cases:` (see README, Evals and tuning).")
    known_keys(doc, {"crew", "judge", "margin", "cases"}, "a case file")
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        raise ConfigError(f"{doc.where('cases')}: `cases` must be a list of at least one case.")
    margin = doc.get("margin") or YamlMapping()
    if not isinstance(margin, YamlMapping):
        raise ConfigError(f"{doc.where('margin')}: `margin` must be a mapping of pass_rate and score.")
    known_keys(margin, {"pass_rate", "score"}, "margin")
    read = [_case(entry, n, doc) for n, entry in enumerate(cases, start=1)]
    names = [c.name for c in read]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{doc.where('cases')}: case name '{twice}' is used twice; each case needs its own.")
    return CaseFile(
        name=path.stem,
        path=path,
        crew=_text(doc, "crew"),
        cases=tuple(read),
        judge=_text(doc, "judge"),
        margin_pass_rate=_number(margin, "pass_rate", 0.1),
        margin_score=_number(margin, "score", 1.0),
    )


def _case(entry: Any, number: int, doc: YamlMapping) -> Case:
    if not isinstance(entry, YamlMapping):
        raise ConfigError(f"{doc.where('cases')}: case {number} must be a mapping with inputs (or mission) and checks.")
    known_keys(entry, {"name", "inputs", "mission", "checks"}, "a case")
    inputs = entry.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ConfigError(f"{entry.where('inputs')}: `inputs` must be a mapping of input name to value.")
    checks = entry.get("checks")
    if not isinstance(checks, list) or not checks:
        raise ConfigError(f"{entry.where('checks' if 'checks' in entry else None)}: case {number} needs `checks`, a list of at least one.")
    return Case(
        name=str(entry.get("name") or f"case {number}"),
        inputs={str(k): str(v) for k, v in inputs.items()},
        mission=_text(entry, "mission"),
        checks=tuple(_check(check, entry) for check in checks),
    )


def _check(entry: Any, case: YamlMapping) -> Check:
    if not isinstance(entry, YamlMapping) or not (set(entry) & set(KINDS)) or len(set(entry) & set(KINDS)) > 1:
        raise ConfigError(f"{case.where('checks')}: each check is one of {', '.join(KINDS)} (and pass_at, for judge).")
    known_keys(entry, {*KINDS, "pass_at"}, "a check")
    kind = next(k for k in KINDS if k in entry)
    value = entry[kind]
    if kind == "json_schema":
        if not isinstance(value, dict):
            raise ConfigError(f"{entry.where(kind)}: json_schema must be a JSON schema mapping.")
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ConfigError(f"{entry.where(kind)}: not a valid JSON schema ({exc.message}).") from None
    elif not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{entry.where(kind)}: {kind} needs a text.")
    elif kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise ConfigError(f"{entry.where(kind)}: not a valid regular expression ({exc}).") from None
    pass_at = entry.get("pass_at", PASS_AT)
    if isinstance(pass_at, bool) or not isinstance(pass_at, int) or not 1 <= pass_at <= 10:
        raise ConfigError(f"{entry.where('pass_at')}: pass_at must be a whole number from 1 to 10.")
    return Check(kind, value, pass_at)


def _text(doc: YamlMapping, key: str) -> str | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{doc.where(key)}: `{key}` must be a text.")
    return value


def _number(doc: YamlMapping, key: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{doc.where(key)}: `{key}` must be a number, zero or more.")
    return float(value)
