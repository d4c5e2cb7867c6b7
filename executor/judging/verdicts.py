"""The status words judging adds to a run's outcomes (API.md 1.1)."""

from typing import Final

# The program ran and exited 0, but the checker did not accept its output.
WRONG_ANSWER: Final = "wrong_answer"
# A case not run, after an earlier case failed with `stop_on_failure`, or after a cancel.
SKIPPED: Final = "skipped"
