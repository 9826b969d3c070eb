"""What the client drivers share: the command line, the time bound, the summary.

A driver spawns the server command given after `--` (in the tests: `mcp-j run … -- SERVER`)
with the official MCP Python SDK's stdio client, connects, lists every tool (all pages),
optionally calls one, and prints ONE line of JSON to stdout:

    {"ok": true, "driver": "handshake", "protocol_version": "2025-11-25",
     "server_info": {"name": "…", "version": "…"}, "tools": ["echo", …],
     "call": {"name": "echo", "is_error": false, "text": "Echo: hi", "structured": null}}

or, when the call was answered with a JSON-RPC error,
`"call": {"name": "…", "error": {"code": -32602, "message": "…"}}`.

Exit status: 0 when the session went as asked; 1 on any error (the summary then has
`"ok": false` and `"error"`); 2 for bad usage; 124 when the time bound (`--timeout`,
default 45 s) passed. A JSON-RPC error answering the call is an error unless
`--expect-error` says it is the expected outcome (then a successful call is the error).

Every child dies with the driver: the SDK's stdio client closes the server's stdin, waits,
then SIGTERMs and SIGKILLs its process group; and past the time bound a watchdog thread
SIGKILLs the process group of every child this process started and exits 124, whatever the
event loop is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Awaitable, Callable

# For messages.
DRIVER_NAME = ["client"]

# How long after the soft bound (anyio.fail_after) the watchdog gives up on a clean exit.
WATCHDOG_GRACE = 10.0


def parse_args(driver: str, argv: list[str], modes: list[str] | None = None) -> argparse.Namespace:
    if "--" not in argv:
        usage(driver, "the server command must follow `--`")
    split = argv.index("--")
    own, command = argv[:split], argv[split + 1 :]
    if not command:
        usage(driver, "no server command after `--`")
    p = argparse.ArgumentParser(
        prog=f"{driver}_client.py",
        description="Drive an MCP server over stdio with the official Python SDK and print a JSON summary.",
        usage=f"%(prog)s [OPTIONS] -- COMMAND [ARGS...]",
    )
    p.add_argument("--call", metavar="TOOL", help="call this tool after listing the tools")
    p.add_argument(
        "--arguments", metavar="JSON", default="{}", help="the call's arguments, a JSON object (default {})"
    )
    p.add_argument(
        "--expect-error",
        action="store_true",
        help="the call must be answered with a JSON-RPC error (reported in the summary, exit 0)",
    )
    p.add_argument("--timeout", type=float, default=45.0, help="bound on the whole session, seconds (default 45)")
    p.add_argument("--cwd", help="working directory of the server command")
    if modes:
        p.add_argument("--mode", choices=modes, default=modes[0], help=f"Client(mode=…) (default {modes[0]})")
    args = p.parse_args(own)
    args.command = command
    try:
        args.arguments = json.loads(args.arguments)
    except ValueError as e:
        usage(driver, f"--arguments is not JSON: {e}")
    if not isinstance(args.arguments, dict):
        usage(driver, "--arguments must be a JSON object")
    if args.expect_error and not args.call:
        usage(driver, "--expect-error needs --call")
    return args


def child_env() -> dict[str, str]:
    """What the server command gets on top of the SDK's default inherited set (HOME, PATH,
    …): mcp-j's own configuration (`MCP_J_*`) and logging, which the SDK would drop."""
    keep = ("LANG", "RUST_BACKTRACE", "RUST_LOG")
    return {k: v for k, v in os.environ.items() if k.startswith("MCP_J_") or k in keep}


def usage(driver: str, why: str) -> None:
    print(f"{driver}_client.py: {why}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------
# The watchdog


def _children() -> list[int]:
    """The pids of this process's children, from /proc."""
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        # pid (comm) state ppid …: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(me):
            pids.append(int(entry))
    return pids


def kill_children() -> None:
    """SIGKILLs every child of this process and its process group (the SDK starts the
    server in a new session, so its group is its own pid)."""
    for pid in _children():
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except OSError:
                pass


def start_watchdog(driver: str, bound: float) -> None:
    def fire() -> None:
        kill_children()
        emit({"ok": False, "driver": driver, "error": f"hard timeout: still running {bound:.0f}s after start"})
        sys.stdout.flush()
        os._exit(124)

    t = threading.Timer(bound, fire)
    t.daemon = True
    t.start()


# ---------------------------------------------------------------------------------------
# The session


def emit(summary: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    sys.stdout.flush()


async def list_all_tools(list_page: Callable[[str | None], Awaitable[Any]]) -> list[str]:
    """Every tool name, following `nextCursor` (bounded: a server that pages forever fails)."""
    names: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = await list_page(cursor)
        names.extend(t.name for t in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return names
    raise RuntimeError("tools/list: more than 100 pages")


def describe_result(name: str, result: Any) -> dict[str, Any]:
    texts = [c.text for c in (result.content or []) if getattr(c, "type", None) == "text"]
    return {
        "name": name,
        "is_error": bool(result.is_error),
        "text": "\n".join(texts),
        "structured": getattr(result, "structured_content", None),
    }


async def call(args: argparse.Namespace, call_tool: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> dict[str, Any]:
    from mcp.shared.exceptions import MCPError

    try:
        result = await call_tool(args.call, args.arguments)
    except MCPError as e:
        outcome = {"name": args.call, "error": {"code": e.code, "message": e.message}}
        if not args.expect_error:
            raise CallFailed(outcome, f"tools/call {args.call}: JSON-RPC error {e.code}: {e.message}") from e
        return outcome
    outcome = describe_result(args.call, result)
    if args.expect_error:
        raise CallFailed(outcome, f"tools/call {args.call}: expected a JSON-RPC error, got a result")
    if outcome["is_error"]:
        raise CallFailed(outcome, f"tools/call {args.call}: the tool reported an error: {outcome['text']}")
    return outcome


class CallFailed(Exception):
    def __init__(self, outcome: dict[str, Any], message: str):
        super().__init__(message)
        self.outcome = outcome


def main(driver: str, session: Callable[[argparse.Namespace, dict[str, Any]], Awaitable[None]], modes=None) -> None:
    """Runs `session(args, summary)` (which fills `summary`) within the time bound, then
    prints the summary and exits."""
    DRIVER_NAME[0] = f"{driver}_client.py"
    args = parse_args(driver, sys.argv[1:], modes)
    start_watchdog(driver, args.timeout + WATCHDOG_GRACE)
    # A polite stop from whoever runs us still takes the server down with us.
    signal.signal(signal.SIGTERM, lambda *_: (kill_children(), os._exit(143)))

    import anyio

    summary: dict[str, Any] = {"ok": False, "driver": driver, "command": args.command}
    if modes:
        summary["mode"] = args.mode
    started = time.monotonic()
    code = 1

    async def bounded() -> None:
        with anyio.fail_after(args.timeout):
            await session(args, summary)

    try:
        anyio.run(bounded)
        summary["ok"] = True
        code = 0
    except TimeoutError:
        summary["error"] = f"timeout: the session took more than {args.timeout:g}s"
        code = 124
    except BaseException as e:  # noqa: BLE001 - report anything, including exception groups
        # A failed call may come wrapped in the SDK's task groups: its outcome still goes
        # in the summary.
        found = leaves(e)
        if len(found) == 1 and isinstance(found[0], CallFailed):
            summary["call"] = found[0].outcome
            summary["error"] = str(found[0])
        else:
            summary["error"] = describe_exception(e)
            print_leaves(e)
    summary["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    kill_children()  # the SDK reaped the server already; this only catches a leak
    emit(summary)
    sys.exit(code)


def leaves(e: BaseException) -> list[BaseException]:
    """The exceptions at the bottom of (nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for x in e.exceptions for leaf in leaves(x)]
    return [e]


def print_leaves(e: BaseException) -> None:
    """The innermost frames of each real exception, not the task-group scaffolding."""
    for leaf in leaves(e):
        print(f"{DRIVER_NAME[0]}: error:", file=sys.stderr)
        traceback.print_exception(leaf, limit=-4, chain=False, file=sys.stderr)


def describe_exception(e: BaseException) -> str:
    """One line: the exception, or the leaves of an exception group."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_exception(x) for x in e.exceptions)
    from mcp.shared.exceptions import MCPError

    if isinstance(e, MCPError):
        return f"JSON-RPC error {e.code}: {e.message}"
    return f"{type(e).__name__}: {e}"
