"""Schemathesis against /openapi.json on the real stack: no 500, every answer as documented."""

from typing import Any

from hypothesis import HealthCheck, given, settings

EXAMPLES_PER_OPERATION = 25


def test_every_operation_answers_as_documented(stack_schema: Any) -> None:
    operations = [result.ok() for result in stack_schema.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate()

        answers_as_documented()
