"""`executor`, the command line of the client (the package's console script), built on click and rich.

    executor run hello.c                  # streams the program's output, exits with its code
    executor run solution.py --tests cases/ --json
    executor run plot.py --language python-data --save out/   # figures left open come back as PNGs
    executor languages | status ID | cancel ID | batch FILE...
    executor mcp                          # an MCP server over stdio (docs/agents.md)

`--url` and `--api-key` default to EXECUTOR_URL and EXECUTOR_API_KEY.
"""

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from executor.client.client import Client, Result
from executor.client.errors import APIError

EXTENSIONS = {
    ".py": "python",
    ".c": "c",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".js": "javascript",
    ".sh": "bash",
    ".java": "java",
}
# The exit code of a job that ended without one of its own (compile error, timeout, ...).
FAILED_EXIT = 1


@click.group()
@click.option("--url", envvar="EXECUTOR_URL", default="http://localhost:8000", show_default=True)
@click.option("--api-key", envvar="EXECUTOR_API_KEY", default=None)
@click.pass_context
def main(context: click.Context, url: str, api_key: str | None) -> None:
    """Run programs on an executor deployment."""
    context.obj = context.with_resource(Client(url, api_key))


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--language", help="A language id; by default from the file's extension.")
@click.option(
    "--stdin", "stdin", type=click.File("r"), help="A file to give the program as stdin (- for ours)."
)
@click.option("--arg", "args", multiple=True, help="An argument for the program (repeatable).")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file for its working directory.",
)
@click.option(
    "--tests",
    "tests",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of NAME.in and NAME.out cases.",
)
@click.option(
    "--output", "outputs", multiple=True, help="A glob of files to bring back, e.g. '*.csv' (repeatable)."
)
@click.option(
    "--save",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to write the files received into.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of streaming.")
@click.pass_obj
def run(
    client: Client,
    *,
    source: Path,
    language: str | None,
    stdin: Any,
    args: tuple[str, ...],
    files: tuple[Path, ...],
    tests: Path | None,
    outputs: tuple[str, ...],
    save: Path | None,
    as_json: bool,
) -> None:
    """Run SOURCE: its output as it is written, then its verdicts; exits with the program's code."""
    chosen = language or EXTENSIONS.get(source.suffix)
    if chosen is None:
        raise click.UsageError(f"cannot tell the language of {source.name}: give --language")
    fields: dict[str, Any] = {"files": [{"path": path.name, "content": path.read_text()} for path in files]}
    if outputs:
        fields["outputs"] = list(outputs)
    if tests is not None:
        fields["tests"] = _cases(tests)
    else:
        fields |= {"stdin": stdin.read() if stdin else "", "args": list(args)}
    job_id = _calling(lambda: client.submit(source.read_text(), language=chosen, **fields))
    result = _calling(lambda: client.wait(job_id) if as_json else _streamed(client, job_id))
    if as_json:
        click.echo(json.dumps(dict(result.raw), indent=2))
    else:
        _report(result)
    if save is not None:
        _save(result, save)
    sys.exit(_exit_code(result))


@main.command()
@click.pass_obj
def languages(client: Client) -> None:
    """The languages the deployment offers now."""
    for language in _calling(client.languages):
        click.echo(f"{language['id']:12} {language['name']} {language['version']}")


@main.command()
@click.argument("job_id")
@click.pass_obj
def status(client: Client, job_id: str) -> None:
    """A job as it is now, as JSON."""
    click.echo(json.dumps(dict(_calling(lambda: client.get(job_id)).raw), indent=2))


@main.command()
@click.argument("job_id")
@click.pass_obj
def cancel(client: Client, job_id: str) -> None:
    """Cancel a job that has not ended."""
    click.echo(_calling(lambda: client.cancel(job_id)).status)


@main.command()
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_obj
def batch(client: Client, sources: tuple[Path, ...]) -> None:
    """Run every SOURCE as one batch; one line per job once all have ended."""
    jobs = []
    for source in sources:
        if source.suffix not in EXTENSIONS:
            raise click.UsageError(f"cannot tell the language of {source.name}")
        jobs.append({"code": source.read_text(), "language": EXTENSIONS[source.suffix], "ref": source.name})
    accepted = _calling(lambda: client.batch(jobs))
    view = _calling(lambda: client.batch_status(accepted["batch_id"], wait=True))
    for job in view["jobs"]:
        click.echo(f"{job['ref']}: {job['status']}")
    sys.exit(0 if all(job["status"] == "success" for job in view["jobs"]) else FAILED_EXIT)


@main.command()
@click.pass_obj
def mcp(client: Client) -> None:
    """Serve the tools run_code and list_languages to an MCP host over stdio (docs/agents.md)."""
    try:
        from executor.client.mcp_server import serve
    except ImportError as missing:
        raise click.ClickException(
            f"executor mcp needs the mcp package ({missing}): pip install 'executor[mcp]'"
        ) from missing
    serve(client)


def _streamed(client: Client, job_id: str) -> Result:
    """Show the job's output as it comes (a spinner while it waits, on a terminal); its result."""
    console = Console(stderr=True)
    spinner = console.status("queued") if console.is_terminal else None
    if spinner is not None:
        spinner.start()
    try:
        for event in client.stream(job_id):
            if event.event == "status" and spinner is not None:
                position = event.data.get("queue_position")
                spinner.update(
                    f"{event.data['status']}" + (f", position {position}" if position is not None else "")
                )
            elif event.event in ("stdout", "stderr"):
                if spinner is not None:
                    spinner.stop()
                    spinner = None
                stream = sys.stdout if event.event == "stdout" else sys.stderr
                stream.write(event.data["data"])
                stream.flush()
            elif event.event == "result":
                return Result.of(event.data)
    finally:
        if spinner is not None:
            spinner.stop()
    return client.wait(job_id)  # the stream ended without its result: ask for it


def _report(result: Result) -> None:
    """After the output: the verdicts of the cases, the files received, and a status that is not success."""
    for index, case in enumerate(result.tests):
        click.echo(f"test {case.get('name') or index + 1}: {case['status']}", err=True)
    for file in result.files:
        click.echo(f"received {file['path']} ({file['size']} bytes)", err=True)
    if result.status != "success":
        why = result.raw.get("message") or result.raw.get("compile_output") or ""
        click.echo(f"{result.status}: {why}".rstrip(), err=True)


def _save(result: Result, folder: Path) -> None:
    """Write the files received under `folder`, at their paths (relative, within it: API.md)."""
    for file in result.files:
        target = folder / file["path"]
        if not target.resolve().is_relative_to(folder.resolve()):
            raise click.ClickException(f"refused to write {file['path']!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        content = file["content"]
        target.write_bytes(content.encode() if file["encoding"] == "utf8" else base64.b64decode(content))


def _exit_code(result: Result) -> int:
    if result.tests:
        return 0 if result.status == "success" else FAILED_EXIT
    if result.return_code is not None:
        return result.return_code
    return 0 if result.status == "success" else FAILED_EXIT


def _cases(folder: Path) -> list[dict[str, Any]]:
    """The cases of a folder: NAME.in as stdin, NAME.out as the expected output, by name."""
    cases = []
    for given in sorted(folder.glob("*.in")):
        expected = given.with_suffix(".out")
        case: dict[str, Any] = {"name": given.stem, "stdin": given.read_text()}
        if expected.exists():
            case["expected_output"] = expected.read_text()
        cases.append(case)
    if not cases:
        raise click.UsageError(f"{folder} holds no NAME.in files")
    return cases


def _calling(call: Any) -> Any:
    """The call's answer; an API error becomes a message and exit code 1."""
    try:
        return call()
    except APIError as error:
        raise click.ClickException(f"{error.status} {error.code}: {error.message}") from error


if __name__ == "__main__":
    main()
