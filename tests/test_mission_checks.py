"""An item's command and file criteria, run in a real local sandbox session; judged ones are left for the judge."""

from __future__ import annotations

import pytest

from mamabear.engine.services import Services
from mamabear.mission.checks import failure, run_checks
from mamabear.mission.plan import PlanItem
from mamabear.sandbox.sessions import CLI

ITEM = PlanItem.model_validate(
    {
        "id": "cli",
        "title": "a converter",
        "specialist": "devops_specialist",
        "instructions": "write convert.py",
        "criteria": [
            {"kind": "file", "check": "convert.py"},
            {"kind": "command", "check": 'python3 convert.py | grep -q \'\\[{"a": "1"}\\]\''},
            {"kind": "judge", "check": "the code is readable"},
        ],
    }
)


@pytest.fixture
def sandbox(isolated):  # noqa: ANN001, ANN201
    sessions = Services().sessions()
    return sessions, sessions.start("local", "development")


def test_criteria_fail_with_their_evidence_then_pass_once_the_work_is_done(sandbox):
    sessions, session = sandbox
    verdicts, judged = run_checks(sessions, session, ITEM, CLI)
    assert [v.passed for v in verdicts] == [False, False] and [c.check for c in judged] == ["the code is readable"]
    feedback = failure(verdicts)
    assert feedback is not None and "file `convert.py` failed: convert.py does not exist" in feedback
    assert "exit code 2" in feedback or "exit code 1" in feedback  # python3 cannot open the file; grep finds nothing
    sessions.edit(session, "create", "convert.py", CLI, file_text='import json\nprint(json.dumps([{"a": "1"}]))\n')
    verdicts, _ = run_checks(sessions, session, ITEM, CLI)
    assert [v.passed for v in verdicts] == [True, True] and failure(verdicts) is None
    audit = [a["action"] for a in sessions.ledger.actions(session_id=session["id"])]
    assert audit.count("bash") >= 2  # the checks are audited like any command


def test_a_check_the_policy_refuses_fails_with_the_refusal(sandbox):
    sessions, session = sandbox
    item = ITEM.model_copy(update={"criteria": [{"kind": "command", "check": "sudo true"}]})
    item = PlanItem.model_validate(item.model_dump())
    verdicts, _ = run_checks(sessions, session, item, CLI)
    assert not verdicts[0].passed and "refused by the sandbox policy" in verdicts[0].evidence
