"""`executor mcp` driven by the MCP SDK's own client over stdio, against the Procfile's web process:
the tools it lists, their schema, and code run through them with files and images coming back."""

import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent

from executor.client import Client as ExecutorClient
from executor.client.mcp_server import build_server
from tests.stack import REPO
from tests.test_web_server import web_port

__all__ = ["web_port"]  # the fixture, shared with the web server's tests

# The smallest valid PNG: one transparent pixel.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="files out are read from the run's disk: a root worker"
)


def talk(port: int, conversation: Callable[[Client], Awaitable[Any]]) -> Any:
    """Start `executor mcp` as a host would (a subprocess on stdio) and hold `conversation` with it."""
    command = StdioServerParameters(
        command=sys.executable,
        args=["-m", "executor.client.cli", "mcp"],
        env={"EXECUTOR_URL": f"http://127.0.0.1:{port}", "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )

    async def session() -> Any:
        with anyio.fail_after(60):
            async with Client(command) as client:
                return await conversation(client)

    return anyio.run(session)


def call(port: int, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def conversation(client: Client) -> CallToolResult:
        result = await client.call_tool(tool, arguments)
        assert isinstance(result, CallToolResult)
        return result

    result: CallToolResult = talk(port, conversation)
    return result


def test_the_host_sees_two_tools_and_what_run_code_takes(web_port: int) -> None:
    async def conversation(client: Client) -> Any:
        return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in talk(web_port, conversation)}
    assert set(tools) == {"run_code", "list_languages"}
    schema = tools["run_code"].input_schema
    assert set(schema["properties"]) == {"language", "code", "stdin", "files", "outputs"}
    assert sorted(schema["required"]) == ["code", "language"]


def test_list_languages_names_what_the_workers_run(web_port: int) -> None:
    result = call(web_port, "list_languages", {})
    assert not result.is_error, result
    assert isinstance(result.content[0], TextContent)
    assert '"id": "python"' in "".join(
        block.text for block in result.content if isinstance(block, TextContent)
    )


def test_run_code_returns_the_programs_output_status_and_times(web_port: int) -> None:
    code = "import sys\nprint('got', input())\nprint('oops', file=sys.stderr)\nsys.exit(3)"
    result = call(web_port, "run_code", {"language": "python", "code": code, "stdin": "hi\n"})
    assert not result.is_error, result
    report = result.structured_content or {}
    assert (report["status"], report["return_code"]) == ("failed", 3), report
    assert (report["stdout"], report["stderr"]) == ("got hi\n", "oops\n")
    assert report["execution_time"] > 0 and report["memory_kb"] > 0
    assert isinstance(result.content[0], TextContent) and '"got hi\\n"' in result.content[0].text


@needs_root
def test_files_in_and_out_with_an_image_as_image_content(web_port: int) -> None:
    code = (
        "import base64, shutil\n"
        "shutil.copy('given.txt', 'copy.txt')\n"
        f"open('dot.png', 'wb').write(base64.b64decode({base64.b64encode(PIXEL).decode()!r}))"
    )
    arguments = {
        "language": "python",
        "code": code,
        "files": [{"path": "given.txt", "content": "from the agent"}],
        "outputs": ["*.txt", "*.png"],
    }
    result = call(web_port, "run_code", arguments)
    report = result.structured_content or {}
    assert report["status"] == "success", report
    assert report["files"] == [
        {"path": "copy.txt", "size": 14, "content": "from the agent"},
        {"path": "dot.png", "size": len(PIXEL), "shown_as": "image"},
        {"path": "given.txt", "size": 14, "content": "from the agent"},
    ]
    images = [block for block in result.content if isinstance(block, ImageContent)]
    assert [(image.mime_type, base64.b64decode(image.data)) for image in images] == [("image/png", PIXEL)]


def test_a_request_the_api_refuses_is_a_tool_error_with_its_code(web_port: int) -> None:
    result = call(web_port, "run_code", {"language": "cobol", "code": "x"})
    assert result.is_error
    text = "".join(block.text for block in result.content if isinstance(block, TextContent))
    assert "422 validation_error: language" in text, text


def test_the_schema_here_is_the_one_the_server_lists() -> None:
    """docs/agents.md shows the tools as the server lists them (in process: no deployment needed)."""

    async def listed() -> list[dict[str, Any]]:
        async with Client(build_server(ExecutorClient("http://127.0.0.1:1"))) as client:
            tools = (await client.list_tools()).tools
        return [{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools]

    page = (REPO / "docs/agents.md").read_text()
    shown = page.split("## The tool schema", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(shown) == anyio.run(listed)
