#!/usr/bin/env python3
"""A minimal MCP server (stdio transport, standard library only) for the README example.

It answers `initialize`, `tools/list` and `tools/call` for one tool, `whoami`, which reports
what the server can see of its machine — inside mcp-j, not much.
"""
import json
import os
import socket
import sys

TOOLS = [{
    "name": "whoami",
    "description": "Report the user, host name and what the server can see",
    "inputSchema": {"type": "object", "properties": {}},
}]


def whoami():
    try:
        home_entries = len(os.listdir("/home"))
    except OSError as e:
        home_entries = f"cannot list /home: {e.strerror}"
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1).close()
        network = "reached 127.0.0.1:22"
    except OSError as e:
        network = f"no network: {e.strerror}"
    return {
        "uid": os.getuid(),
        "hostname": socket.gethostname(),
        "cwd": os.getcwd(),
        "home": home_entries,
        "network": network,
        "env": sorted(os.environ),
    }


def answer(request):
    method = request.get("method")
    if method == "initialize":
        return {
            "protocolVersion": request["params"].get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hello-mcp", "version": "1.0.0"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call" and request["params"]["name"] == "whoami":
        return {"content": [{"type": "text", "text": json.dumps(whoami())}]}
    raise KeyError(method)


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification
    try:
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": answer(request)}
    except KeyError:
        reply = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}}
    print(json.dumps(reply), flush=True)
