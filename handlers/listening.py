"""Which addresses listen on a TCP port, from /proc/net/tcp and tcp6 (no lsof, no ss needed)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

LISTEN = "0A"


def _decode(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    # tcp6: four 32-bit words, each in host (little-endian) order
    words = struct.unpack(">4I", raw)
    packed = b"".join(struct.pack("<I", w) for w in words)
    return socket.inet_ntop(socket.AF_INET6, packed)


def listeners(port: int, proc_net: Path = Path("/proc/net")) -> list[str]:
    """Local addresses in LISTEN state on `port`, e.g. ['127.0.0.1'] or ['0.0.0.0', '::']."""
    found: list[str] = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != LISTEN:
                continue
            addr, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port:
                found.append(_decode(addr))
    return list(dict.fromkeys(found))


def reachable_from_containers(addresses: list[str]) -> bool:
    """True when some listener accepts traffic arriving on a non-loopback interface."""
    for text in addresses:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_loopback:
            return True
    return False
