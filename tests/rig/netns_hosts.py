"""Test Dify hosts on this machine: a network namespace each, with a real OpenSSH server.

`HostRig(root, count).start()` makes `count` namespaces (`ip netns add`, a veth pair, a
/29 of 10.78.N.0 with N random per run: the private engine's bridge is 10.77.0.0/24), and in
each one runs Debian's `/usr/sbin/sshd -D` as a child of the test (its own config, host key
made here with ssh-keygen, authorized_keys with the project's forced command) and optionally
a fake Ollama on the namespace's own 127.0.0.1:11434. The CLI on a "host" is this checkout's
`.venv/bin/dify-ollama`. With `images`, each namespace runs its own dockerd (own bridge,
data-root, socket) with those images of the private engine copied in (`copy_images` adds
more to one host), and the CLI there reaches it through DOCKER_HOST set by sshd (`SetEnv`);
without, the CLIs use the shared private engine.

`close()` stops every process it started (by its own Popen, never by name) and deletes the
namespaces and links.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handlers.ssh_transport import stop_process

ROOT = Path(__file__).resolve().parents[2]
SSHD = "/usr/sbin/sshd"
FORCED = ROOT / "scripts" / "dify-ollama-ssh-command"
CLI = ROOT / ".venv" / "bin" / "dify-ollama"
READY_TIMEOUT = 15.0


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at path (+ .pub); returns the public line."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class NsHost:
    index: int
    netns: str
    link: str
    prefix: str  # "10.78.N.B": the /29's first address is B, the host side B+1, sshd B+2
    dir: Path
    env: dict[str, str] = field(default_factory=dict)
    host_key_pub: str = ""
    sshd: subprocess.Popen[bytes] | None = None
    engine: subprocess.Popen[bytes] | None = None  # its own dockerd, when it has one
    ollama: subprocess.Popen[str] | None = None

    def addr(self, last: int) -> str:
        net, base = self.prefix.rsplit(".", 1)
        return f"{net}.{int(base) + last}"

    @property
    def address(self) -> str:
        return self.addr(2)

    @property
    def unused_address(self) -> str:
        """An address of its /29 that nobody holds: connecting there gets no answer."""
        return self.addr(3)

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    @property
    def docker_host(self) -> str:
        """Its own engine's socket (a short path: unix sockets take 107 bytes at most)."""
        return f"unix://{self.dir / 'docker.sock'}"


class HostRig:
    def __init__(self, root: Path, count: int = 3) -> None:
        self.root = root
        self.count = count
        self.tag = secrets.token_hex(3)
        self.hosts: list[NsHost] = []
        self.key = root / "bot_key"
        self.key_pub = ""
        self.octet = self._free_octet()

    @staticmethod
    def _free_octet() -> int:
        routes = subprocess.run(
            ["ip", "-4", "route"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        for _ in range(50):
            octet = 1 + secrets.randbelow(250)
            if f"10.78.{octet}." not in routes:
                return octet
        raise RuntimeError("no free 10.78.x.0 range")

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, env: dict[str, str], images: tuple[str, ...] = ()) -> HostRig:
        """`images`: each host gets its own dockerd (its DOCKER_HOST), with these images of
        the shared private engine (env's DOCKER_HOST) loaded; none: no engine of its own, the
        hosts' CLIs use env's DOCKER_HOST."""
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.key_pub = keygen(self.key, "dify-ollama-bot-test")
        try:
            for index in range(self.count):
                self.hosts.append(self._make(index, env, images))
        except BaseException:
            self.close()
            raise
        return self

    def _make(self, index: int, env: dict[str, str], images: tuple[str, ...]) -> NsHost:
        # a /29 per host within one 10.78.N.0/24: .0/29, .8/29, ...
        host = NsHost(
            index=index,
            netns=f"dotest-{self.tag}-{index}",
            link=f"dho{self.tag}{index}",
            prefix=f"10.78.{self.octet}.{8 * index}",
            dir=self.root / f"host{index}",
        )
        host.dir.mkdir()
        peer = f"dhn{self.tag}{index}"
        _run("ip", "netns", "add", host.netns)
        try:
            _run("ip", "link", "add", host.link, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", host.netns)
            _run("ip", "addr", "add", f"{host.addr(1)}/29", "dev", host.link)
            _run("ip", "link", "set", host.link, "up")
            inside = ("ip", "netns", "exec", host.netns)
            _run(*inside, "ip", "addr", "add", f"{host.address}/29", "dev", peer)
            _run(*inside, "ip", "link", "set", peer, "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            host.env = {
                **env,
                "STATE_DIR": str(host.dir / "state"),
                "OLLAMA_URL": "http://127.0.0.1:11434",
                "CHECK_TIMEOUT": "2",
            }
            if images:
                self._dockerd(host, env["DOCKER_HOST"], images)
                host.env["DOCKER_HOST"] = host.docker_host
            self._sshd(host)
        except BaseException:
            self._remove(host)
            raise
        return host

    def _dockerd(self, host: NsHost, shared: str, images: tuple[str, ...]) -> None:
        """A private dockerd inside the namespace: its own bridge (inside the namespace only,
        so its address cannot collide with the machine's), data-root, exec-root, pidfile and
        socket, no iptables, DNS on loopback; `images` copied from the shared engine."""
        inside = ("ip", "netns", "exec", host.netns)
        _run(*inside, "ip", "link", "add", "dob0", "type", "bridge")
        _run(*inside, "ip", "addr", "add", f"10.79.{host.index + 1}.1/24", "dev", "dob0")
        _run(*inside, "ip", "link", "set", "dob0", "up")
        engine = self.root / f"engine{host.index}"
        log = (host.dir / "dockerd.log").open("wb")
        host.engine = subprocess.Popen(
            [
                "nsenter", f"--net={host.netns_path}", "dockerd",
                "--host", host.docker_host,
                "--data-root", str(engine / "data"),
                "--exec-root", str(engine / "x"),
                "--pidfile", str(engine / "pid"),
                "--iptables=false", "--ip-masq=false", "--dns", "127.0.0.1",
                "--bridge", "dob0",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while subprocess.run(
            ["docker", "-H", host.docker_host, "version"], capture_output=True, timeout=30
        ).returncode:
            if host.engine.poll() is not None or time.monotonic() > deadline:
                tail = (host.dir / "dockerd.log").read_text()[-500:]
                raise RuntimeError(f"dockerd in {host.netns} did not start: {tail}")
            time.sleep(0.2)
        self.copy_images(host, shared, images)

    @staticmethod
    def copy_images(host: NsHost, shared: str, images: tuple[str, ...]) -> None:
        """`images` of the engine at `shared` into the host's own engine, in one archive (the
        layers they share travel once); never pulled."""
        if not images:
            return
        save = subprocess.Popen(["docker", "-H", shared, "save", *images], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", host.docker_host, "load", "-q"],
            stdin=save.stdout, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        assert save.stdout is not None
        save.stdout.close()
        if save.wait(60):
            raise RuntimeError(f"docker save {' '.join(images)} failed")

    def _sshd(self, host: NsHost) -> None:
        host_key = host.dir / "ssh_host_ed25519_key"
        host.host_key_pub = " ".join(keygen(host_key, "test-host").split()[:2])
        (host.dir / "authorized_keys").write_text(
            f'command="{FORCED} {CLI}",restrict {self.key_pub}\n'
        )
        set_env = " ".join(f"{k}={v}" for k, v in sorted(host.env.items()))
        config = host.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}",
                    "Port 22",
                    f"HostKey {host_key}",
                    f"PidFile {host.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {host.dir / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "MaxStartups 100:30:200",
                    "MaxSessions 50",
                    "LogLevel ERROR",
                    f"SetEnv {set_env}",
                    "",
                ]
            )
        )
        log = (host.dir / "sshd.log").open("wb")
        host.sshd = subprocess.Popen(
            ["nsenter", f"--net={host.netns_path}", SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if host.sshd.poll() is not None:
                raise RuntimeError(f"sshd exited: {(host.dir / 'sshd.log').read_text()[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((host.address, 22), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd in {host.netns} did not listen")

    def known_hosts(self, host: NsHost, key_of: NsHost | None = None) -> Path:
        """A known_hosts file pinning `host`'s address to its key (or to `key_of`'s: wrong)."""
        pinned = (key_of or host).host_key_pub
        path = host.dir / ("known_hosts" if key_of is None else f"known_hosts_wrong{key_of.index}")
        path.write_text(f"{host.address} {pinned}\n")
        return path

    def authorize(self, host: NsHost, key: Path, cli: Path | str) -> None:
        """Another key for `host`, whose forced command execs `cli`."""
        public = keygen(key, "another-key")
        with (host.dir / "authorized_keys").open("a") as stream:
            stream.write(f'command="{FORCED} {cli}",restrict {public}\n')

    def start_ollama(self, host: NsHost, bind: str = "0.0.0.0") -> None:
        """A fake Ollama on the namespace's own port 11434 (its 127.0.0.1 answers)."""
        script = (
            "import sys\n"
            "from tests.rig.fake_ollama import FakeOllama\n"
            f"fake = FakeOllama(bind={bind!r}, port=11434).start()\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n"
            "fake.stop()\n"
        )
        host.ollama = subprocess.Popen(
            ["nsenter", f"--net={host.netns_path}", sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert host.ollama.stdout is not None
        if host.ollama.stdout.readline().strip() != "ready":
            raise RuntimeError(f"fake Ollama in {host.netns} did not start")

    def entry(self, host: NsHost, key: Path | None = None, **extra: Any) -> dict[str, Any]:
        """A hosts-file entry reaching `host` with the bot's key and its pinned host key."""
        return {
            "ssh": {
                "user": "root",
                "host": host.address,
                "key": str(key or self.key),
                "known_hosts": str(self.known_hosts(host)),
            },
            **extra,
        }

    def hosts_file(self, entries: dict[str, dict[str, Any]], name: str = "hosts.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump({"hosts": entries}))
        return path

    # --- teardown ----------------------------------------------------------------------------
    @staticmethod
    def _stop(process: subprocess.Popen[Any] | None) -> None:
        if process is None or process.poll() is not None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        stop_process(process)

    def _remove(self, host: NsHost) -> None:
        self._stop(host.ollama)
        self._stop(host.sshd)
        if host.engine is not None and host.engine.poll() is None:
            # its containers first: a dockerd stopping running containers waits for each
            listed = subprocess.run(
                ["docker", "-H", host.docker_host, "ps", "-aq"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            ids = listed.stdout.split()
            if ids:
                subprocess.run(
                    ["docker", "-H", host.docker_host, "rm", "-f", *ids],
                    capture_output=True, timeout=60,
                )  # fmt: skip
            stop_process(host.engine, grace=30)
        subprocess.run(["ip", "link", "del", host.link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=10)

    def close(self) -> None:
        for host in self.hosts:
            self._remove(host)
        self.hosts.clear()
        for engine in self.root.glob("engine*"):
            shutil.rmtree(engine, ignore_errors=True)  # images and containers' layers
