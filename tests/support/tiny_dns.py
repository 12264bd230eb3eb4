"""A tiny DNS server for the VM tier's resolver test: every A question gets ADDRESS, any other
type an empty answer. Run inside a private mount and network namespace (tests/vm/test_vm_dns.py):

    unshare -m -n --propagation private -- python -m tests.support.tiny_dns RESOLV 127.0.0.1=192.0.2.1 ...

It brings the namespace's loopback up, bind-mounts the file RESOLV over /etc/resolv.conf (the
host's own file is never touched: the mount exists in this namespace only), serves each
LISTEN=ADDRESS on LISTEN:53/udp, prints "serving" and runs until killed. Traffic: 127.0.0.x only.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys

A, IN = 1, 1


def answer(query: bytes, address: str) -> bytes:
    """The reply to ``query`` (one question): ADDRESS for an A question, no record otherwise."""
    end = 12
    while query[end]:
        end += 1 + query[end]
    end += 5  # the name's zero byte, QTYPE, QCLASS
    qtype = struct.unpack(">H", query[end - 4:end - 2])[0]
    record = b""
    if qtype == A:
        record = b"\xc0\x0c" + struct.pack(">HHIH", A, IN, 0, 4) + socket.inet_aton(address)
    header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if record else 0, 0, 0)
    return header + query[12:end] + record


def main(argv):
    resolv, pairs = argv[0], [a.split("=", 1) for a in argv[1:]]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    socks = {}
    for listen, address in pairs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((listen, 53))
        socks[s] = address
    print("serving", flush=True)
    while True:
        for s in select.select(list(socks), [], [])[0]:
            data, peer = s.recvfrom(4096)
            try:
                s.sendto(answer(data, socks[s]), peer)
            except (IndexError, struct.error):
                continue  # not a DNS question


if __name__ == "__main__":
    main(sys.argv[1:])
