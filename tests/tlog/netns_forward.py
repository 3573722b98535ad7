"""Holder of a private network namespace, and the bridge from the host's loopback into it.

Run as ``unshare --net -- python netns_forward.py FD:PORT…`` (see ``tests/tlog/netns.py``).
Each ``FD`` is a listening socket that the test process bound on the host's 127.0.0.1 and
passed down: a socket keeps the namespace it was created in, so those stay reachable from the
host. This process itself lives in the new namespace: it brings ``lo`` up, then for every
connection accepted on ``FD`` connects to ``127.0.0.1:PORT`` inside the namespace and copies
bytes both ways. Servers that bind every interface (Rekor's metrics on ``:2112``, Trillian's
ports) are started inside with ``nsenter`` and see nothing but this loopback.

It prints ``ready`` once ``lo`` is up, and exits when its standard input closes (the test
process ended, however it ended). Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import sys
import threading

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_CONNECT_TIMEOUT = 10.0


def bring_loopback_up() -> None:
    """``ip link set lo up``, with the ioctl that command makes (no iproute2 needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _relay(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=_CONNECT_TIMEOUT)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(client, port), daemon=True).start()


def main(argv: list[str]) -> int:
    """Bring ``lo`` up, relay every ``FD:PORT`` pair, exit when standard input closes."""
    pairs = []
    for arg in argv:
        fd, port = (int(part) for part in arg.split(":"))
        pairs.append((socket.socket(fileno=fd), port))
    bring_loopback_up()
    for listener, port in pairs:
        threading.Thread(target=_serve, args=(listener, port), daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while sys.stdin.buffer.read(4096):
        pass
    # Daemon threads may be blocked in accept() or recv(): leave without waiting for them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
