#!/usr/bin/python3
"""The origin server of bench/egress.sh: a minimal HTTP/1.1 file server that sends each
body with sendfile(2), so the origin is never the bottleneck of a throughput measurement
(`python3 -m http.server` copies through Python buffers: slower than the proxy under test).

    origin.py ADDRESS PORT DIRECTORY

GET /NAME answers 200 with DIRECTORY/NAME (a plain name, no subdirectories), anything else
404; one request per connection (`Connection: close`), one thread per connection. Standard
library only, so the system /usr/bin/python3 runs it.
"""

import os
import socket
import socketserver
import sys


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk or len(head) > 65536:
                return
            head += chunk
        parts = head.split(b"\r\n", 1)[0].split()
        # A proxy may forward the absolute form (http://host:port/name): keep the path.
        target = parts[1].decode("latin-1") if len(parts) == 3 else ""
        if "://" in target:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        name = target.lstrip("/")
        path = os.path.join(self.server.directory, name)
        if parts[:1] != [b"GET"] or not name or "/" in name or not os.path.isfile(path):
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with open(path, "rb") as body:
            size = os.fstat(body.fileno()).st_size
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
            sock.sendfile(body)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


def main():
    address, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with Server((address, port), Handler) as server:
        server.directory = directory
        server.serve_forever()


if __name__ == "__main__":
    main()
