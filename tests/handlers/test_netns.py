"""Telling a container's own network namespace from the host's (handlers/netns.py)."""

from __future__ import annotations

from pathlib import Path

from handlers.netns import interfaces, looks_isolated


def test_own_namespace_has_only_loopback_and_eth() -> None:
    assert looks_isolated(True, ["lo", "eth0"])
    assert looks_isolated(True, ["lo", "eth0", "eth1"])


def test_host_network_or_no_container_is_not_isolated() -> None:
    assert not looks_isolated(True, ["lo", "eth0", "docker0", "veth1a2b3c"])  # --network host
    assert not looks_isolated(True, ["lo", "ens3", "br-2ed9571bb13c"])
    assert not looks_isolated(False, ["lo", "eth0"])  # a VM with one NIC is a host
    assert not looks_isolated(True, [])  # unreadable: claim nothing


def test_interfaces_read_from_proc_net_dev_format(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.write_text(
        "Inter-|   Receive                            |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes\n"
        "    lo:  1000      10    0    0    0     0          0         0  1000\n"
        "  eth0: 20000     200    0    0    0     0          0         0  3000\n"
    )
    assert interfaces(dev) == ["lo", "eth0"]
    assert interfaces(tmp_path / "missing") == []
