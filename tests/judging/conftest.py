"""The sandbox fixtures, for judging through the real sandbox: every case's run, and every checker
program's, must leave nothing running either."""

from tests.sandbox.conftest import bwrap_sandbox, languages, no_process_outlives_its_run

__all__ = ["bwrap_sandbox", "languages", "no_process_outlives_its_run"]
