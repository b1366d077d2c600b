#!/usr/bin/env python3
"""One TLS connection held open across a broker's certificate reload (issue 20).

Connects, prints the subject CN of the certificate the broker presented and whether an
ApiVersions request is answered; then waits for a line on stdin and asks again on the same
connection. Standard library only.

Usage: tls_reload_probe.py HOST PORT CA_FILE
"""
import socket
import ssl
import struct
import sys


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def api_versions(sock, correlation_id):
    client = b"reload-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    sock.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    got, error = struct.unpack(">ih", data[:6])
    return "ok" if got == correlation_id and error == 0 else f"bad {got} {error}"


def main():
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    context = ssl.create_default_context(cafile=ca)
    sock = context.wrap_socket(socket.create_connection((host, port), timeout=30),
                               server_hostname=host)
    subject = dict(pair[0] for pair in sock.getpeercert()["subject"])
    print(f"subject {subject['commonName']}", flush=True)
    print(f"answer 1 {api_versions(sock, 1)}", flush=True)
    if sys.stdin.readline():
        try:
            print(f"answer 2 {api_versions(sock, 2)}", flush=True)
        except Exception as e:  # the point of the test: say what happened
            print(f"answer 2 failed: {e!r}", flush=True)


if __name__ == "__main__":
    main()
