"""Files in (API.md 1.1): every path trick refused at validation with a 422 naming `files[i]`,
and accepted files written into the working directory before the program is compiled and run."""

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient

from bench.stack import announce_every_language
from executor.jobs.files import BASE64_PATTERN, PATH_PATTERN, plain_relative_path
from executor.settings import Settings
from executor.web.app import create_app

SETTINGS = Settings(
    redis_url="redis://127.0.0.1:1/0", queue_name="files-unit", max_files=3, max_files_bytes=100
)


@pytest.fixture
def unit_client() -> Iterator[FlaskClient]:
    connection = fakeredis.FakeRedis()
    announce_every_language(connection)
    yield create_app(SETTINGS, redis=connection).test_client()
    connection.flushall()


def submit(client: FlaskClient, files: list[dict[str, Any]], language: str = "python") -> Any:
    return client.post("/api/v1/execute", json={"code": "print(1)", "language": language, "files": files})


@pytest.mark.parametrize(
    "path",
    [
        "../escape.py",
        "/etc/passwd",
        "lib/../../escape.py",
        "./main.py",
        "lib//util.py",
        "lib/",
        "",
        "a\0b",
        "with space.py",
        "back\\slash.py",
        "ünicode.py",
        "x" * 256,
        "..",
    ],
    ids=lambda path: repr(path)[:24],
)
def test_a_path_that_could_leave_the_working_directory_is_refused(
    unit_client: FlaskClient, path: str
) -> None:
    response = submit(unit_client, [{"path": "fine.py", "content": ""}, {"path": path, "content": "x"}])
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == "files[1].path"


@pytest.mark.parametrize(
    ("files", "naming"),
    [
        (
            [{"path": "a.py", "content": ""}, {"path": "a.py", "content": ""}],
            "files[1].path: 'a.py' is given twice",
        ),
        ([{"path": "main.py", "content": ""}], "files[0].path: 'main.py' is the program's own source file"),
        (
            [{"path": "lib", "content": ""}, {"path": "lib/a.py", "content": ""}],
            "files[0].path: 'lib' is a file",
        ),
    ],
    ids=["duplicate", "the-source-file", "file-and-folder"],
)
def test_paths_that_clash_are_refused_naming_the_file(
    unit_client: FlaskClient, files: list[dict[str, Any]], naming: str
) -> None:
    response = submit(unit_client, files)
    assert response.status_code == 422
    assert naming in response.get_json()["error"]["message"]


def test_a_c_programs_source_file_is_its_own_not_pythons(unit_client: FlaskClient) -> None:
    assert submit(unit_client, [{"path": "main.py", "content": ""}], language="c").status_code == 202
    assert submit(unit_client, [{"path": "main.c", "content": ""}], language="c").status_code == 422


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([{"path": f"f{n}.py", "content": ""} for n in range(4)], "files"),
        ([{"path": "big.bin", "content": "x" * 101}], "files"),
        ([{"path": "b.bin", "content": "not base64!", "encoding": "base64"}], "files[0].content"),
        ([{"path": "b.bin", "content": "", "encoding": "gzip"}], "files[0].encoding"),
        ([{"path": "b.bin", "content": "", "mode": "0777"}], "files[0].mode"),
    ],
    ids=["too-many", "too-large", "bad-base64", "unknown-encoding", "unknown-field"],
)
def test_limits_and_encodings_are_enforced(
    unit_client: FlaskClient, files: list[dict[str, Any]], field: str
) -> None:
    response = submit(unit_client, files)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"][0]["field"] == field


def test_files_at_the_limits_are_accepted(unit_client: FlaskClient) -> None:
    files = [
        {"path": "lib/util.py", "content": "x" * 50},
        {"path": "data/blob.bin", "content": base64.b64encode(b"\0" * 50).decode(), "encoding": "base64"},
    ]
    assert submit(unit_client, files).status_code == 202


def test_a_two_file_python_program_imports_its_own_module(run: Any) -> None:
    files = [{"path": "lib/__init__.py", "content": ""}, {"path": "lib/util.py", "content": "ANSWER = 42\n"}]
    view = run("from lib.util import ANSWER\nprint(ANSWER)", files=files)
    assert (view["status"], view["stdout"]) == ("success", "42\n"), view


def test_a_two_file_c_program_includes_its_own_header(run: Any) -> None:
    files = [{"path": "include/answer.h", "content": "static int answer(void) { return 7; }\n"}]
    code = '#include <stdio.h>\n#include "include/answer.h"\nint main(void) { printf("%d\\n", answer()); }\n'
    view = run(code, language="c", files=files)
    if view["status"] == "internal_error" and "root" in (view["message"] or ""):
        pytest.skip("compiled languages need a root worker")
    assert (view["status"], view["stdout"]) == ("success", "7\n"), view


def test_binary_files_arrive_byte_for_byte(run: Any) -> None:
    blob = bytes(range(256))
    files = [{"path": "blob.bin", "content": base64.b64encode(blob).decode(), "encoding": "base64"}]
    view = run("print(open('blob.bin', 'rb').read() == bytes(range(256)))", files=files)
    assert view["stdout"] == "True\n", view


@pytest.mark.parametrize(
    "path",
    [
        "a",
        ".a",
        "..a",
        "...",
        "a.b/c_d-e",
        "a/.b/..c",
        ".",
        "..",
        "a/./b",
        "a/../b",
        "/a",
        "a/",
        "a//b",
        "",
        "a b",
    ],
)
def test_the_schemas_path_pattern_says_what_validation_enforces(path: str) -> None:
    # Generated requests follow the schema (tests/test_fuzz.py): it must admit exactly the valid paths.
    try:
        plain_relative_path(path)
        valid = True
    except ValueError:
        valid = False
    assert (re.match(PATH_PATTERN, path) is not None) == valid


@pytest.mark.parametrize("content", ["", "YQ==", "YWI=", "YWJj", "YQ", "Y===", "a b=", "ä"])
def test_the_schemas_base64_pattern_says_what_decoding_accepts(content: str) -> None:
    try:
        base64.b64decode(content, validate=True)
        valid = True
    except (binascii.Error, ValueError):
        valid = False
    assert (re.match(BASE64_PATTERN, content) is not None) == valid
