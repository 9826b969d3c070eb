"""Drives a stdio MCP server in the `initialize` handshake era (2024-11-05 … 2025-11-25).

The classic path of the official Python SDK, as most existing clients use it:
`stdio_client` spawns the command, `ClientSession(read, write)` runs `initialize`, then
`tools/list` (every page) and, with `--call`, one `tools/call`. See _driver.py for the
options, the summary it prints and the exit status.

    handshake_client.py [--call TOOL [--arguments JSON] [--expect-error]] [--timeout S] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import _driver


async def session(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.types import PaginatedRequestParams

    params = StdioServerParameters(
        command=args.command[0], args=args.command[1:], env=_driver.child_env(), cwd=args.cwd
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            summary["protocol_version"] = str(init.protocol_version)
            summary["server_info"] = {"name": init.server_info.name, "version": init.server_info.version}
            summary["tools"] = await _driver.list_all_tools(
                lambda cursor: s.list_tools(params=PaginatedRequestParams(cursor=cursor))
            )
            if args.call:
                summary["call"] = await _driver.call(args, lambda name, arguments: s.call_tool(name, arguments))


if __name__ == "__main__":
    _driver.main("handshake", session)
    sys.exit(1)  # not reached
