"""``--answers FILE``: what a person would type when a task with ``human_input: true`` asks for feedback, for runs
with no one at a terminal (CI, --detach, a pipe).

The file maps a task id to its feedback, one round after another; each round makes the agent answer again, and
after the last (or for a task the file does not name) the answer is accepted::

    draft:                      # the task id
      - mention that they sleep # round 1
    review: tighten the wording # one round
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping
from mamabear.errors import ConfigError, UsageError


@dataclass
class Answers:
    rounds: dict[str, list[str]]
    where: dict[str, str] = field(default_factory=dict)  # file:line of each task's entry
    given: list[tuple[str, str]] = field(default_factory=list)  # (task, feedback) in the order they were used

    @classmethod
    def load(cls, path: str) -> Answers:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UsageError(f"--answers {path}: no such file; write a YAML mapping of task id to its feedback.")
        doc = yamlfile.load(file)
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{file}:1: --answers needs a mapping of task id to its feedback (a text, or a list of them).")
        rounds: dict[str, list[str]] = {}
        for task, value in doc.items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{doc.where(task)}: the feedback for task '{task}' must be a text or a list of texts.")
            rounds[task] = [v for v in values if v.strip()]
        return cls(rounds, {task: doc.where(task) for task in doc})

    def check(self, asking: dict[str, str]) -> None:
        """Each task the file names is one of the crew's tasks that ask (``asking``: id to where it is defined)."""
        for task, where in self.where.items():
            if task not in asking:
                known = ", ".join(asking) or "none of its tasks asks (human_input: true)"
                raise ConfigError(f"{where}: task '{task}' does not ask for feedback in this crew; the tasks that do: {known}.")

    def next(self, task: str) -> str:
        """The next round of feedback for ``task``; "" (accept the answer) when there is none left."""
        queue = self.rounds.get(task) or []
        feedback = queue.pop(0) if queue else ""
        self.given.append((task, feedback))
        return feedback
