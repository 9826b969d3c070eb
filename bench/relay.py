#!/usr/bin/python3
"""A reference TCP relay for bench/egress.sh: what a plain one-connection-at-a-time relay
achieves on this machine, to read the proxy's figures against.

    relay.py MODE LISTEN_ADDRESS LISTEN_PORT TARGET_ADDRESS TARGET_PORT

MODE `copy`: recv_into a 64 KiB buffer and sendall it (the same work per byte as mcp-j's
proxy: two copies through user space). MODE `splice`: splice(2) socket → pipe → socket, the
bytes never copied to user space. Relays the upstream → client direction with the chosen
method (the bulk direction of a download) and the request direction with recv/sendall.
Standard library only (os.splice needs Python ≥ 3.10).
"""

import os
import socket
import socketserver
import sys
import threading

CHUNK = 64 * 1024


def pump_copy(src, dst):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = src.recv_into(buf)
        if n == 0:
            break
        dst.sendall(view[:n])


def pump_splice(src, dst):
    r, w = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB
    except OSError:
        pass
    try:
        while True:
            n = os.splice(src.fileno(), w, 1 << 20)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dst.fileno(), n)
    finally:
        os.close(r)
        os.close(w)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        upstream = socket.create_connection(self.server.target)
        up = threading.Thread(target=self.request_direction, args=(client, upstream))
        up.start()
        try:
            self.server.pump(upstream, client)
        except OSError:
            pass
        client.shutdown(socket.SHUT_WR)
        up.join()
        upstream.close()

    @staticmethod
    def request_direction(client, upstream):
        try:
            pump_copy(client, upstream)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    mode, address, port, target, target_port = sys.argv[1:6]
    with Server((address, int(port)), Handler) as server:
        server.target = (target, int(target_port))
        server.pump = {"copy": pump_copy, "splice": pump_splice}[mode]
        server.serve_forever()


if __name__ == "__main__":
    main()
