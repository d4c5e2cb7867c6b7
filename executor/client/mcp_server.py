"""`executor mcp`: an MCP server over stdio whose tools run code on an executor deployment.

An agent's host (Claude Desktop, an IDE, an agent framework) starts this process and calls two tools:
`run_code` and `list_languages`. Each call goes through the synchronous `Client`, so the deployment,
its API keys and its limits are exactly those of the HTTP API; nothing runs on the host itself.

Built on the official `mcp` package (its `MCPServer`), which is asynchronous: the SDK runs our plain
synchronous tool functions in worker threads, so no asyncio code is written here. The package is the
`mcp` extra (`pip install '.[mcp]'`), because the client alone should not pull in its web stack.
"""

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import BaseModel, Field

from executor.client.client import Client
from executor.client.errors import APIError

# Files whose bytes an MCP host can show as an image, by extension (API.md files carry no MIME type).
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
# The fields of a result an agent needs; the rest of the API's view (timestamps, URLs) is noise to it.
REPORTED_FIELDS = (
    "status",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "return_code",
    "signal",
    "message",
    "compile_output",
    "execution_time",
    "cpu_time",
    "memory_kb",
    "files_truncated",
)
INSTRUCTIONS = (
    "Runs programs in a sandbox on an executor deployment: no network, limited time and memory, a fresh "
    "working directory each run. Call list_languages for the language ids, then run_code. Files the "
    "program writes come back when their names match `outputs` (glob patterns); with python-data, "
    "matplotlib figures left open come back as images without asking."
)

# What the host's model reads about each tool.
RUN_CODE = (
    "Run a program in a sandbox and return its stdout, stderr, status, return code, times and memory. "
    "Files whose paths match the `outputs` glob patterns come back too, images as image content."
)
LIST_LANGUAGES = "The languages the deployment runs now: the id, name and version of each."


class InputFile(BaseModel):
    """A file written into the program's working directory before it runs (API.md "files")."""

    path: str = Field(description="A relative path, e.g. data/input.csv")
    content: str
    encoding: Literal["utf8", "base64"] = "utf8"


def build_server(client: Client) -> MCPServer:
    """The MCP server whose tools call `client`."""
    server: MCPServer = MCPServer(name="executor", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(description=RUN_CODE)
    def run_code(
        language: Annotated[str, Field(description="A language id from list_languages, e.g. python")],
        code: Annotated[str, Field(description="The program's source")],
        stdin: Annotated[str, Field(description="Given to the program as its standard input")] = "",
        files: Annotated[list[InputFile] | None, Field(description="Files for its working directory")] = None,
        outputs: Annotated[
            list[str] | None, Field(description="Glob patterns of files to bring back, e.g. ['*.csv']")
        ] = None,
    ) -> CallToolResult:
        """The job's result as tool content (the tool's description is RUN_CODE, for the host)."""
        fields: dict[str, Any] = {"outputs": outputs} if outputs else {}
        try:
            result = client.run(
                code,
                language=language,
                stdin=stdin,
                files=[file.model_dump() for file in files or ()],
                **fields,
            )
        except APIError as error:
            raise ToolError(f"{error.status} {error.code}: {error.message}") from error
        return reported(result.raw)

    @server.tool(description=LIST_LANGUAGES)
    def list_languages() -> list[dict[str, Any]]:
        """The languages as tool content (the tool's description is LIST_LANGUAGES, for the host)."""
        try:
            offered = client.languages()
        except APIError as error:
            raise ToolError(f"{error.status} {error.code}: {error.message}") from error
        return [{key: language[key] for key in ("id", "name", "version")} for language in offered]

    return server


def reported(view: Mapping[str, Any]) -> CallToolResult:
    """A job's view as tool content: its main fields as JSON text (files listed, text files with their
    content), then each image file as image content. A program that failed is still a successful call:
    the failure is the program's, and the agent reads it in `status`."""
    summary = {name: view[name] for name in REPORTED_FIELDS if name in view}
    images: list[ContentBlock] = []
    listed = []
    for file in view.get("files") or []:
        kind = IMAGE_TYPES.get(_extension(file["path"]))
        if kind is not None and file["encoding"] == "base64":
            images.append(ImageContent(type="image", data=file["content"], mime_type=kind))
            listed.append({"path": file["path"], "size": file["size"], "shown_as": "image"})
        else:
            listed.append(_text_file(file))
    if listed:
        summary["files"] = listed
    text = TextContent(type="text", text=json.dumps(summary, indent=2))
    return CallToolResult(content=[text, *images], structured_content=summary)


def _text_file(file: Mapping[str, Any]) -> dict[str, Any]:
    """A returned file as the agent reads it: text as it is, other bytes under `content_base64`."""
    key = "content" if file["encoding"] == "utf8" else "content_base64"
    return {"path": file["path"], "size": file["size"], key: file["content"]}


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def serve(client: Client) -> None:
    """Serve the tools over stdio until the host closes our stdin."""
    build_server(client).run(transport="stdio")
