"""What the wsp suite's oracles report.

A :class:`Finding` names the oracle that failed, the case and the step, the
message that was sent, and what was expected against what was observed. The
oracle names are part of the JSON report (docs/fuzz.md, "The wsp suite").
"""

from __future__ import annotations

__all__ = ["ORACLES", "Finding", "Oracle"]

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Oracle(StrEnum):
    """The oracles of docs/fuzz.md; their values are the report's ``oracle`` keys."""

    CLOSE_CODE = "close-code"  # an invalid step not answered with its documented code
    PROCESSING = "processing"  # a valid step before it was not processed (no answer)
    UNDOCUMENTED = "undocumented"  # an answer the spec does not allow (bad bytes, 1011…)
    LIVENESS = "liveness"  # the canary session was not served within its deadline
    CRASH = "crash"  # the target went away during the run
    MEMORY = "memory"  # the target's memory grew past the bound
    SECURITY = "security"  # a topic, session or proof the credentials do not allow
    DELIVERY = "delivery"  # valid traffic lost, duplicated or reordered


ORACLES: tuple[str, ...] = tuple(o.value for o in Oracle)


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken oracle. ``case`` is -1 for findings of the run (memory, liveness)."""

    oracle: Oracle
    case: int
    step: int  # index in the case's steps; -1 for the handshake, -2 for the run
    message: str  # what was sent (a short description of the step)
    expected: str
    observed: str
    rule: int | None = None  # the checklist rule (docs/protocol.md S.9), when one applies

    @property
    def key(self) -> tuple[str, int | None, str]:
        """What two findings share when they are the same bug (for de-duplication
        and shrinking): the oracle, the rule and the kind of step."""
        if self.oracle in (Oracle.CRASH, Oracle.MEMORY, Oracle.LIVENESS):
            return (self.oracle.value, self.rule, "")  # one bug whatever the case
        return (self.oracle.value, self.rule, self.message.split("(", 1)[0].strip())

    def to_json(self) -> dict[str, Any]:
        return {
            "oracle": self.oracle.value,
            "case": self.case,
            "step": self.step,
            "message": self.message,
            "expected": self.expected,
            "observed": self.observed,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(
            Oracle(data["oracle"]),
            int(data["case"]),
            int(data["step"]),
            str(data["message"]),
            str(data["expected"]),
            str(data["observed"]),
            data.get("rule"),
        )
