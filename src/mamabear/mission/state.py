"""A mission's saved state (its ``mission_state`` event, the latest kept): one typed model and one reader, for the
runner's resume, the report and the live view alike. States saved by earlier versions read the same (every field
has its default)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ItemState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str = "pending"  # pending | done | failed
    attempts: int = 0  # tries in this plan version
    failures: list[str] = Field(default_factory=list)  # the reasons of the failures in a row, newest last


class CourseState(BaseModel):
    """What the course decided so far (its plan versions are in their ``mission_plan`` events)."""

    model_config = ConfigDict(extra="ignore")

    goal: str = ""
    plan: dict[str, Any] | None = None  # only in states saved before plans had versions
    version: int = 0
    items: dict[str, ItemState] = Field(default_factory=dict)
    steps: int = 0
    since_progress: int = 0
    replans: int = 0
    plan_problems: list[str] = Field(default_factory=list)
    plan_answers: int = 0
    pending_replan: str | None = None
    stuck_replanned: bool = False
    confirmed: bool = False
    finish: tuple[str, str] | None = None  # (status, reason) of a stop decided while hearing a step


class MissionState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    course: CourseState = Field(default_factory=CourseState)
    results: dict[str, str] = Field(default_factory=dict)  # item id -> what its specialist said it did
    evidence: dict[str, str] = Field(default_factory=dict)  # item id -> its verdicts, one line each
    max_steps: int | None = None  # --max-steps, held for the whole mission

    @classmethod
    def read(cls, data: dict[str, Any] | None) -> MissionState | None:
        """The state an event's data holds; None for none."""
        return cls.model_validate(data) if data else None

    def item_states(self) -> dict[str, str]:
        """Each item's state as shown: pending, done, failed (a pending item that failed in this version is failed)."""
        return {i: "failed" if r.status == "pending" and r.failures else r.status for i, r in self.course.items.items()}
