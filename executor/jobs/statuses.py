"""A job's status words, as API.md names them: the one source for the web, the workers and the bench.

A job that ran to its end takes its run's outcome (`executor.sandbox.Outcome`) as its status, or
judging's `wrong_answer` (`executor.judging.verdicts`); before that it is queued or started, and a
cancel makes it canceled, whatever its run was doing.
"""

from typing import Final, Literal

from executor.judging.verdicts import SKIPPED, WRONG_ANSWER
from executor.sandbox import Outcome

QUEUED: Final = "queued"
STARTED: Final = "started"
CANCELED: Final = "canceled"
INTERNAL_ERROR: Final = Outcome.INTERNAL_ERROR.value
TERMINAL_STATUSES = frozenset({*(outcome.value for outcome in Outcome), WRONG_ANSWER, CANCELED})
# In API.md's order: the waiting words, then the outcomes, with canceled before internal_error.
STATUSES = (
    QUEUED,
    STARTED,
    *(outcome.value for outcome in Outcome if outcome is not Outcome.INTERNAL_ERROR),
    WRONG_ANSWER,
    CANCELED,
    Outcome.INTERNAL_ERROR.value,
)
JobStatusWord = Literal[STATUSES]  # type: ignore[valid-type]
# A test case's status (API.md 1.1): its run's outcome, wrong_answer, or skipped.
CASE_STATUSES = (
    *(outcome.value for outcome in Outcome if outcome is not Outcome.COMPILE_ERROR),
    WRONG_ANSWER,
    SKIPPED,
)
CaseStatusWord = Literal[CASE_STATUSES]  # type: ignore[valid-type]
