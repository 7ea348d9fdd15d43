#!/usr/bin/env python3
"""A deliberately broken MCP server for the tests of the trainer's MCP client.

It speaks just enough JSON-RPC over stdio (one message per line) to initialise and list its
tools, then misbehaves on purpose, which a server built with an MCP SDK would not let it do:
- echo(text): answers with the text (the control);
- crash(): exits with code 3 mid-call;
- hang(): never answers;
- malformed(): a result whose content holds no text;
- refuse(): an error result (isError);
- flaky(text): echo, except that every third call crashes and every fifth hangs (by the
  call count in MISBEHAVING_COUNTER, a file shared across restarts).
MISBEHAVING_START=exit makes it exit with code 4 before answering anything.
MISBEHAVING_LINGER=1 makes it stay when its standard input closes (as a server that ignores
end-of-file would), so only a signal ends it.
"""
import json
import os
import sys
import time

if os.environ.get("MISBEHAVING_START") == "exit":
    sys.stderr.write("misbehaving server: refusing to start\n")
    sys.exit(4)

TOOLS = [
    {"name": name, "description": name, "inputSchema": {
        "type": "object", "properties": {"text": {"type": "string"}} if name in ("echo", "flaky") else {},
        "required": ["text"] if name in ("echo", "flaky") else []}}
    for name in ("echo", "crash", "hang", "malformed", "refuse", "flaky")
]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(identifier, text, is_error=False):
    send({"jsonrpc": "2.0", "id": identifier, "result": {"content": [{"type": "text", "text": text}], "isError": is_error}})


def next_count():
    path = os.environ.get("MISBEHAVING_COUNTER")
    if not path:
        return 1
    count = int(open(path).read() or "0") + 1 if os.path.exists(path) else 1
    with open(path, "w") as out:
        out.write(str(count))
    return count


for line in sys.stdin:
    request = json.loads(line)
    method, identifier = request.get("method"), request.get("id")
    if identifier is None:
        continue  # a notification
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": identifier, "result": {
            "protocolVersion": request["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "misbehaving", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": identifier, "result": {"tools": TOOLS}})
    elif method == "tools/call":
        name = request["params"]["name"]
        arguments = request["params"].get("arguments") or {}
        if name == "flaky":
            count = next_count()
            name = "crash" if count % 3 == 0 else "hang" if count % 5 == 0 else "echo"
        if name == "echo":
            text_result(identifier, arguments.get("text", ""))
        elif name == "crash":
            sys.exit(3)
        elif name == "hang":
            time.sleep(3600)
        elif name == "malformed":
            send({"jsonrpc": "2.0", "id": identifier, "result": {"content": [{"type": "image", "data": "AA==", "mimeType": "image/png"}]}})
        elif name == "refuse":
            text_result(identifier, "refused on purpose", is_error=True)
    else:
        send({"jsonrpc": "2.0", "id": identifier, "error": {"code": -32601, "message": "no method " + str(method)}})

if os.environ.get("MISBEHAVING_LINGER") == "1":
    while True:
        time.sleep(3600)
