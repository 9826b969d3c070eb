"""Drives a stdio MCP server with the SDK's high-level `Client`, by default in
`mode="auto"`: it probes `server/discover` and adopts the stateless 2026-07-28 era when the
server offers it, and falls back to the `initialize` handshake when it does not (the summary's
`protocol_version` says which). `--mode legacy` forces the handshake; `--mode 2026-07-28`
adopts that version without a probe. Then `tools/list` (every page) and, with `--call`, one
`tools/call`. See _driver.py for the options, the summary it prints and the exit status.

    auto_client.py [--mode auto|legacy|2026-07-28] [--call TOOL [--arguments JSON] [--expect-error]]
                   [--timeout S] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import _driver

MODES = ["auto", "legacy", "2026-07-28"]


async def session(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=args.command[0], args=args.command[1:], env=_driver.child_env(), cwd=args.cwd
    )
    # No response cache: every listing must come from the server (through the proxy).
    async with Client(params, mode=args.mode, cache=None) as client:
        summary["protocol_version"] = client.protocol_version
        info = client.server_info
        summary["server_info"] = None if info is None else {"name": info.name, "version": info.version}
        summary["tools"] = await _driver.list_all_tools(lambda cursor: client.list_tools(cursor=cursor))
        if args.call:
            summary["call"] = await _driver.call(args, lambda name, arguments: client.call_tool(name, arguments))


if __name__ == "__main__":
    _driver.main("auto", session, MODES)
    sys.exit(1)  # not reached
