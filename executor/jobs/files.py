"""Files in (API.md 1.1): files a client sends with its program, checked before anything is queued;
and the patterns of the files it wants back (files out), checked alike.

A path is relative and plain: at most 255 bytes of `A-Z a-z 0-9 . _ - /`, no empty, `.` or `..`
segment. So no client path can name anything outside the job's working directory: no absolute
path, no parent, no NUL, no name the shell or a symlink could reinterpret, and the sandbox writes
the files itself (it never follows a link the client made).
"""

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_PATH_BYTES = 255
_PATH_CHARACTERS = re.compile(r"^[A-Za-z0-9._/-]+$")
# The rule below as one regular expression, for the OpenAPI schema (so generated requests obey it):
# a segment is anything of the allowed characters but "", "." and "..".
_SEGMENT = r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)"
PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
# What base64.b64decode(..., validate=True) accepts: the standard alphabet, padded.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def plain_relative_path(path: str) -> str:
    """Refuse every path that could name something outside the working directory, or nothing."""
    return _relative_within(path, _PATH_CHARACTERS, "A-Z a-z 0-9 . _ - and /")


def _relative_within(text: str, characters: re.Pattern[str], allowed: str) -> str:
    """`text`, a relative path (or pattern) of `characters` that cannot leave the working directory."""
    if len(text.encode("utf-8")) > MAX_PATH_BYTES:
        raise ValueError(f"must be at most {MAX_PATH_BYTES} bytes")
    if not characters.match(text):
        raise ValueError(f"may hold only {allowed}")
    if any(segment in ("", ".", "..") for segment in text.split("/")):
        raise ValueError("must be relative, with no empty, '.' or '..' segment")
    return text


MAX_OUTPUT_PATTERNS = 16
_PATTERN_CHARACTERS = re.compile(r"^[A-Za-z0-9._/*?\[\]{},!-]+$")
# The rule of `plain_pattern` as one regular expression, for the OpenAPI schema, as PATH_PATTERN.
_GLOB = r"[A-Za-z0-9_*?\[\]{},!-]"
_GLOB_OR_DOT = r"[A-Za-z0-9._*?\[\]{},!-]"
_PATTERN_SEGMENT = rf"(?:{_GLOB}{_GLOB_OR_DOT}*|\.{_GLOB}{_GLOB_OR_DOT}*|\.\.{_GLOB_OR_DOT}+)"
OUTPUT_PATTERN = rf"^{_PATTERN_SEGMENT}(?:/{_PATTERN_SEGMENT})*$"


def plain_pattern(pattern: str) -> str:
    """Refuse an `outputs` pattern that could reach outside the working directory (API.md 1.1)."""
    return _relative_within(
        pattern, _PATTERN_CHARACTERS, "A-Z a-z 0-9 . _ - / and the glob characters * ? [ ] { } , !"
    )


class FileIn(BaseModel):
    """One file written into the program's working directory before it is compiled and run."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        json_schema_extra={
            "if": {"properties": {"encoding": {"const": "base64"}}, "required": ["encoding"]},
            "then": {"properties": {"content": {"pattern": BASE64_PATTERN}}},
        },
    )

    path: Annotated[str, AfterValidator(plain_relative_path)] = Field(
        description="Relative path in the working directory: A-Z a-z 0-9 . _ - /, no empty, '.' or "
        "'..' segment, at most 255 bytes.",
        json_schema_extra={"pattern": PATH_PATTERN, "maxLength": MAX_PATH_BYTES},
    )
    # Before `content`, which is checked against it.
    encoding: Literal["utf8", "base64"] = Field("utf8", description="How `content` is written.")
    content: str = Field(description="The file's content, as `encoding` says.")

    @field_validator("content")
    @classmethod
    def _decodes(cls, content: str, info: ValidationInfo) -> str:
        if info.data.get("encoding") == "base64":
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as error:
                raise ValueError(f"is not valid base64: {error}") from error
        return content

    def data(self) -> bytes:
        """The file's bytes."""
        if self.encoding == "base64":
            return base64.b64decode(self.content, validate=True)
        return self.content.encode("utf-8")


def at_most_bytes(limit: int) -> AfterValidator:
    """A check that the files' decoded sizes add up to at most `limit` bytes."""

    def check(files: list[FileIn]) -> list[FileIn]:
        total = sum(len(file.data()) for file in files)
        if total > limit:
            raise ValueError(f"must hold at most {limit} bytes in all, decoded; got {total}")
        return files

    return AfterValidator(check)


def layout_problem(paths: list[str], source_file: str | None) -> str | None:
    """What is wrong with the files' paths taken together, naming the file, or None: a path given
    twice, the program's own source file, or a file that another path needs as its folder."""
    folders = {"/".join(path.split("/")[:end]) for path in paths for end in range(1, path.count("/") + 1)}
    for index, path in enumerate(paths):
        if path in paths[:index]:
            return f"files[{index}].path: {path!r} is given twice"
        if path == source_file:
            return f"files[{index}].path: {path!r} is the program's own source file"
        if path in folders:
            return f"files[{index}].path: {path!r} is a file, and a folder of another file"
    return None
