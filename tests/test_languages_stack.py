"""Languages through the real stack: listed, compiled once, and a compile error as API.md 1.1 says."""

import os
from typing import Any

import pytest
from flask.testing import FlaskClient

from executor.languages import build_languages, default_python, language_version

Run = Any
REGISTRY = build_languages(default_python())

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="compiled languages need a root worker")


def test_the_languages_route_lists_every_language_with_what_1_1_adds(client: FlaskClient) -> None:
    listing = {item["id"]: item for item in client.get("/api/v1/languages").get_json()}
    assert set(listing) == set(REGISTRY)
    assert listing["c"]["compiled"] is True and listing["c"]["source_file"] == "main.c"
    assert listing["python"]["compiled"] is False and listing["python"]["packages"] == []
    libraries = {package["name"]: package["version"] for package in listing["python-data"]["packages"]}
    assert {"numpy", "pandas", "scipy", "matplotlib"} <= set(libraries)
    assert all(version[0].isdigit() for version in libraries.values())


@needs_root
def test_a_c_program_compiles_and_runs_with_its_compile_time(run: Run) -> None:
    code = '#include <stdio.h>\nint main(int argc, char **argv) { printf("hi %s\\n", argv[1]); return 0; }\n'
    view = run(code, language="c", args=["there"])
    assert (view["status"], view["stdout"]) == ("success", "hi there\n"), view
    assert view["compile_time"] > 0 and view["compile_output"] == ""


@needs_root
def test_a_c_compile_error_comes_back_with_gccs_message(run: Run) -> None:
    view = run("int main( { return 0; }\n", language="c")
    assert (view["status"], view["return_code"]) == ("compile_error", None), view
    assert "error" in view["compile_output"]


def test_a_python_job_has_no_compile_fields(run: Run) -> None:
    view = run("print(1)")
    assert view["status"] == "success"
    assert "compile_output" not in view and "compile_time" not in view


def test_a_python_data_program_uses_numpy(run: Run) -> None:
    if language_version(REGISTRY["python-data"].version_probe) == "unknown":
        pytest.skip("python-data's libraries are not installed on this host (make installs them as root)")
    view = run("import numpy\nprint(int(numpy.arange(5).sum()))", language="python-data", timeout=20)
    assert (view["status"], view["stdout"]) == ("success", "10\n"), view
