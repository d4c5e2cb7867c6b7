"""Files out through the API (API.md 1.1): asked for by pattern, returned in the view; patterns that
could leave the working directory are refused before anything is queued."""

import os
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from executor.jobs.files import OUTPUT_PATTERN, plain_pattern

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="files out are read from the run's disk: a root worker"
)


@needs_root
def test_the_files_asked_for_come_back_in_the_view(run: Any) -> None:
    code = (
        "import os\n"
        "os.makedirs('out')\n"
        "open('out/r.csv', 'w').write('x,y\\n')\n"
        "open('skip.txt', 'w').write('no')"
    )
    view = run(code, outputs=["out/*.csv"])
    assert view["status"] == "success", view
    assert view["files"] == [{"path": "out/r.csv", "size": 4, "encoding": "utf8", "content": "x,y\n"}]
    assert view["files_truncated"] is False


def test_a_job_without_outputs_has_no_files_fields(run: Any) -> None:
    view = run("open('a.txt', 'w').write('a')")
    assert "files" not in view and "files_truncated" not in view


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"outputs": ["../secret"]}, "outputs[0]"),
        ({"outputs": ["/etc/*"]}, "outputs[0]"),
        ({"outputs": ["a/./b"]}, "outputs[0]"),
        ({"outputs": ["*.txt"] * 17}, "outputs"),
        ({"outputs": ["*.txt"], "tests": [{"stdin": "1"}]}, None),
    ],
    ids=["parent", "absolute", "dot", "too-many", "with-tests"],
)
def test_an_outputs_pattern_that_could_leave_the_working_directory_is_refused(
    client: FlaskClient, fields: dict[str, Any], field: str | None
) -> None:
    response = client.post("/api/v1/execute", json={"code": "print(1)", **fields})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"] == field


@pytest.mark.parametrize(
    "pattern",
    ["*.png", "out/**/*.csv", "{a,b}.txt", ".hidden", "..x", "../x", "a//b", "/abs", "a/./b", "x y", "é"],
)
def test_the_schemas_outputs_pattern_says_what_validation_enforces(pattern: str) -> None:
    try:
        plain_pattern(pattern)
        valid = True
    except ValueError:
        valid = False
    assert bool(re.fullmatch(OUTPUT_PATTERN, pattern)) is valid
