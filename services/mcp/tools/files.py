"""File tools: list, read, write and search inside the workspace roots."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from pydantic import Field

from services.mcp.sandbox import SandboxError
from services.mcp.settings import McpSettings
from services.mcp.tools.base import ToolArgs, ToolContext, ToolError, ToolSpec, shown

MAX_LIST_ENTRIES = 1000
MAX_LINE_CHARS = 300
MAX_FILES_SCANNED = 20_000

PathField = Field(
    default=".",
    max_length=4096,
    description="Path relative to the workspace root (or absolute inside a root).",
)


class ListFilesArgs(ToolArgs):
    path: str = PathField


class ReadFileArgs(ToolArgs):
    path: str = Field(max_length=4096, description="File to read, relative to the workspace.")


class WriteFileArgs(ToolArgs):
    path: str = Field(max_length=4096, description="File to write, relative to the workspace.")
    content: str = Field(description="The complete new content (UTF-8 text).")
    create_dirs: bool = Field(default=False, description="Create missing parent directories.")


class SearchFilesArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=1000, description="Literal text to find.")
    path: str = PathField
    case_sensitive: bool = True
    max_results: int = Field(default=50, ge=1, le=1000)


def _path_only(args: Any) -> dict[str, Any]:
    return {"path": args.path}


async def list_files(ctx: ToolContext, args: ListFilesArgs) -> dict[str, Any]:
    try:
        location = ctx.workspace.locate(args.path)
        entries = await asyncio.to_thread(ctx.workspace.list_dir, location)
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None
    shown = entries[:MAX_LIST_ENTRIES]
    return {
        "path": location.display,
        "root": str(location.root),
        "entries": shown,
        "total": len(entries),
        "truncated": len(entries) > len(shown),
    }


async def read_file(ctx: ToolContext, args: ReadFileArgs) -> dict[str, Any]:
    limit = ctx.settings.max_read_bytes
    try:
        location = ctx.workspace.locate(args.path)
        data, size = await asyncio.to_thread(ctx.workspace.read_file, location, limit)
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None
    truncated = size > len(data)
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character is still text.
        if truncated and exc.start >= len(data) - 3:
            content, encoding = data[: exc.start].decode("utf-8"), "utf-8"
        else:
            content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    result: dict[str, Any] = {
        "path": location.display,
        "content": content,
        "encoding": encoding,
        "size": size,
        "bytes_returned": len(data),
        "truncated": truncated,
    }
    if truncated:
        result["note"] = f"file is {size} bytes; only the first {len(data)} are returned"
    return result


def check_write_size(settings: McpSettings, args: WriteFileArgs) -> None:
    """The content limit, checked before an approval is asked for (and again at run time)."""
    size = len(args.content.encode("utf-8", "surrogatepass"))
    if size > settings.max_write_bytes:
        raise ToolError(
            f"content is {size} bytes; the limit is {settings.max_write_bytes} bytes"
            " (MCP_MAX_WRITE_BYTES): write a smaller file, or raise MCP_MAX_WRITE_BYTES and"
            " restart the MCP server",
            code="content_too_large",
            status=413,
        )


async def write_file(ctx: ToolContext, args: WriteFileArgs) -> dict[str, Any]:
    check_write_size(ctx.settings, args)
    data = args.content.encode("utf-8", "surrogatepass")
    try:
        location = ctx.workspace.locate(args.path)
        if any(part.casefold() == ".git" for part in location.parts):
            # .git/config and hooks would let a file write become code execution by git.
            raise ToolError(
                "writing inside a .git directory is not allowed; use the git tools",
                code="git_internals",
                status=403,
            )
        created = await asyncio.to_thread(
            ctx.workspace.write_file, location, data, create_dirs=args.create_dirs
        )
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None
    return {"path": location.display, "bytes_written": len(data), "created": created}


def _search(ctx: ToolContext, args: SearchFilesArgs) -> dict[str, Any]:
    location = ctx.workspace.locate(args.path)
    needle = args.query if args.case_sensitive else args.query.casefold()
    matches: list[dict[str, Any]] = []
    scanned = skipped = 0
    truncated = False
    for path, dir_fd, size in ctx.workspace.walk_files(location):
        if scanned >= MAX_FILES_SCANNED:
            truncated = True
            break
        scanned += 1
        if size > ctx.settings.max_read_bytes:
            skipped += 1
            continue
        data = ctx.workspace.read_in_dir(dir_fd, path.rsplit("/", 1)[-1], size + 1)
        if data is None or b"\x00" in data:
            skipped += 1  # vanished, special or binary
            continue
        text = data.decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), start=1):
            haystack = line if args.case_sensitive else line.casefold()
            if needle in haystack:
                if len(matches) >= args.max_results:
                    truncated = True
                    break
                matches.append({"path": path, "line": number, "text": line[:MAX_LINE_CHARS]})
        if truncated:
            break
    return {
        "query": args.query,
        "matches": matches,
        "files_scanned": scanned,
        "files_skipped": skipped,
        "truncated": truncated,
    }


async def search_files(ctx: ToolContext, args: SearchFilesArgs) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(_search, ctx, args)
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None


PREVIEW_CHARS = 200


def _write_summary(args: WriteFileArgs) -> dict[str, Any]:
    """Path, size and SHA-256 of the content (the tool's audit rows; no content)."""
    data = args.content.encode("utf-8", "surrogatepass")
    return {
        "path": shown(args.path),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "create_dirs": args.create_dirs,
    }


def _write_description(args: WriteFileArgs) -> dict[str, Any]:
    """The summary plus the first PREVIEW_CHARS characters, for the approver."""
    # Redact a little more than is shown, so a credential cut at the edge is still caught.
    preview = shown(args.content[: PREVIEW_CHARS + 100])[:PREVIEW_CHARS]
    return {
        **_write_summary(args),
        "preview": preview,
        "preview_truncated": len(args.content) > PREVIEW_CHARS,
    }


TOOLS = (
    ToolSpec(
        "list_files",
        "List the entries of a directory in the workspace (names, types, sizes).",
        ListFilesArgs,
        list_files,
        _path_only,
    ),
    ToolSpec(
        "read_file",
        "Read a text file from the workspace (binary files come back base64-encoded).",
        ReadFileArgs,
        read_file,
        _path_only,
    ),
    ToolSpec(
        "write_file",
        "Create or replace a file in the workspace with the given text. Needs approval.",
        WriteFileArgs,
        write_file,
        _write_summary,
        precheck=check_write_size,
        describe=_write_description,
    ),
    ToolSpec(
        "search_files",
        "Find lines containing a literal text in the workspace's files (skips .git and binaries).",
        SearchFilesArgs,
        search_files,
        lambda a: {"path": a.path, "query_chars": len(a.query), "max_results": a.max_results},
    ),
)
