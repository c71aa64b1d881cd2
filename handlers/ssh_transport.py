"""The SSH transport: the product's own CLI on a Dify host, through the OpenSSH client.

`ssh` runs as an argv list (never a shell), with the host's pinned known_hosts file and a
dedicated key (no agent) or the agent the entry names (no key file): strict host-key
checking, no forwarding, no user ssh_config (`-F none`), no password prompts (BatchMode). The
remote words are `KEY=VALUE... dify-ollama SUBCOMMAND ARGS... --json`, quoted with
shlex.join; on the host the forced command (scripts/dify-ollama-ssh-command) splits them with
shlex and execs the CLI, no shell either.

Connections are reused: one master connection per host (ControlMaster, a socket in a private
0700 folder), started on first use and kept until `close()`; every command is a session on
it. Sessions are bounded in number (SshPool.max_sessions). Each host has one deadline for
its whole answer (connecting included); after it the client is killed and the host's
answer is a finding, never a hang.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from config import i18n
from config.hosts import HostEntry, SshTarget
from config.i18n import gettext as _
from handlers import transport as t
from handlers.results import Finding

SSH = "/usr/bin/ssh"
MAX_CONNECT = 10.0  # ssh's own ConnectTimeout, at most (the host's deadline may be shorter)
MAX_OUTPUT = 16 * 1024 * 1024  # bytes of the CLI's JSON we read at most
TAIL = 4000  # characters of ssh's stderr that are classified
MASTER_POLL = 0.02


def stop_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Ask a child to end (SIGTERM); after `grace` seconds, kill it. Never leaves a zombie."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def identity_options(target: SshTarget) -> list[str]:
    """The dedicated key and no agent, or the entry's agent and no key file. With an agent,
    IdentitiesOnly must be off (OpenSSH would refuse every agent key no IdentityFile names),
    and IdentityFile=none keeps ssh from also offering the bot user's ~/.ssh/id_* keys."""
    if target.agent is not None:
        return [
            "-o",
            "IdentitiesOnly=no",
            "-o",
            "IdentityFile=none",
            "-o",
            f"IdentityAgent={target.agent}",
        ]
    assert target.key is not None  # config.hosts: exactly one of key / agent
    return ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", str(target.key)]


def base_options(target: SshTarget, control: Path, connect_timeout: float) -> list[str]:
    return [
        "-F",
        "none",
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={target.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "UpdateHostKeys=no",
        *identity_options(target),
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        f"ConnectTimeout={max(1, int(connect_timeout))}",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=2",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"ControlPath={control}",
        "-p",
        str(target.port),
        "-l",
        target.user,
    ]


def remote_words(host: HostEntry, args: Sequence[str]) -> list[str]:
    """What the host's forced command receives: settings, the CLI, its arguments, --json.
    The host's CLI answers in the bot's language (its JSON texts are shown as they come),
    unless the host entry sets BOT_LANGUAGE itself; English needs no word."""
    assert host.ssh is not None
    values = dict(host.settings)
    if i18n.current() != i18n.DEFAULT:
        values.setdefault(i18n.ENV_VAR, i18n.current())
    settings = [f"{key}={value}" for key, value in sorted(values.items())]
    return [*settings, host.ssh.cli, *args, "--json"]


def ssh_argv(host: HostEntry, control: Path, args: Sequence[str], connect: float) -> list[str]:
    assert host.ssh is not None
    return [
        SSH,
        *base_options(host.ssh, control, connect),
        "-o",
        "ControlMaster=no",
        "--",
        host.ssh.host,
        shlex.join(remote_words(host, args)),
    ]


# --- what went wrong, from ssh's stderr -------------------------------------------------------
def classify(host: HostEntry, code: int, stderr: str) -> Finding | None:
    """ssh's own failures (exit 255) and the forced command's refusals -> a host finding with
    the remedy; None when the CLI ran (its exit code and JSON speak for themselves)."""
    name = host.name
    target = host.ssh
    where = f"{target.user}@{target.host}:{target.port}" if target else name
    tail = stderr[-TAIL:]
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")[:300]
    if code == 255:
        if "Host key verification failed" in tail or "IDENTIFICATION HAS CHANGED" in tail:
            return t.host_problem(
                name,
                t.HOST_KEY,
                _("{host}: its SSH host key is not the one pinned for it (refused)"),
                last,
                _(
                    "Check the host first; if its key really changed, put its new key in "
                    "{known_hosts} (`ssh-keyscan -p {port} HOST`, verified out of band)."
                ).format(
                    known_hosts=target.known_hosts if target else "known_hosts",
                    port=target.port if target else 22,
                ),
            )
        if "Permission denied" in tail:
            return t.host_problem(
                name, t.HOST_REACH, _("{host}: SSH refused the bot's key"), last, _denied(target)
            )
        if "Connection refused" in tail:
            summary = _("{host}: SSH connection refused at {where}")
            remedy = _("Start sshd on the host, or fix the port in HOSTS_FILE.")
        elif "timed out" in tail:
            summary = _("{host}: no SSH answer from {where} (timed out)")
            remedy = _("Is the host up and reachable from the bot (network, firewall)?")
        else:
            summary = _("{host}: cannot reach {where} over SSH")
            remedy = _("Is the host up, and its name and port right in HOSTS_FILE?")
        return t.host_problem(name, t.HOST_REACH, summary, last, remedy, where=where)
    if code == 127 or "command not found" in tail:
        return t.host_problem(
            name,
            t.HOST_PRODUCT,
            _("{host}: dify-ollama is not installed there (or not on the forced command's path)"),
            last,
            _(
                "Install dify-ollama-bot on the host (README: Many hosts) and point the forced "
                "command at its `dify-ollama`."
            ),
        )
    if code == 126:
        return t.host_problem(
            name,
            t.HOST_PRODUCT,
            _("{host}: the host's forced command refused the request"),
            last,
            _("Update scripts/dify-ollama-ssh-command on the host to this version."),
        )
    return None


def _denied(target: SshTarget | None) -> str:
    account = f"~{target.user if target else ''}/.ssh/authorized_keys"
    if target is not None and target.agent is not None:
        return _(
            "Load the key into the agent at {agent} (`ssh-add KEY`, SSH_AUTH_SOCK={agent}; "
            "`ssh-add -l` lists it) and add its public key with the forced command to "
            "{authorized_keys} on the host (README: Many hosts)."
        ).format(agent=target.agent, authorized_keys=account)
    return _(
        "Add the bot's public key ({key}.pub) with the forced command to {authorized_keys} on "
        "the host (README: Many hosts)."
    ).format(key=target.key if target else "key", authorized_keys=account)


def _text(raw: bytes) -> str:
    return raw[:MAX_OUTPUT].decode("utf-8", "replace")


class SshPool:
    """Master connections per host, in a private folder, and a bound on sessions."""

    def __init__(self, max_sessions: int = 16) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dify-ollama-ssh-"))
        os.chmod(self.dir, 0o700)
        self.max_sessions = max_sessions
        self._sessions = threading.BoundedSemaphore(max_sessions)
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._masters: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._closed = False

    def control(self, host: HostEntry) -> Path:
        return self.dir / host.name

    def master_pid(self, name: str) -> int | None:
        """The live master connection's process for host `name`, if there is one."""
        with self._lock:
            process = self._masters.get(name)
        return process.pid if process is not None and process.poll() is None else None

    def _host_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(name, threading.Lock())

    def master(self, host: HostEntry, until: float) -> Finding | None:
        """A live master for `host` by `until` (time.monotonic()), else why not."""
        assert host.ssh is not None
        control = self.control(host)
        with self._host_lock(host.name):
            process = self._masters.get(host.name)
            if process is None or process.poll() is not None:
                if self._closed:
                    return t.host_problem(
                        host.name, t.HOST_REACH, _("{host}: bot shutting down"), "", ""
                    )
                control.unlink(missing_ok=True)
                log = open(self.dir / f"{host.name}.log", "w+b")  # noqa: SIM115 - kept open
                connect = min(MAX_CONNECT, max(1.0, until - time.monotonic()))
                argv = [
                    SSH,
                    *base_options(host.ssh, control, connect),
                    "-o",
                    "ControlMaster=yes",
                    "-o",
                    "ControlPersist=no",
                    "-N",
                    "--",
                    host.ssh.host,
                ]
                process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
                )
                self._masters[host.name] = process
                old = self._logs.pop(host.name, None)
                if old is not None:
                    old.close()
                self._logs[host.name] = log
            while not control.exists():
                code = process.poll()
                if code is not None:
                    written = self._logs[host.name]
                    written.seek(0)
                    stderr = _text(written.read())
                    return classify(host, 255 if code else code, stderr) or t.host_problem(
                        host.name, t.HOST_REACH, _("{host}: SSH closed at once"), stderr[-300:], ""
                    )
                if time.monotonic() >= until:
                    process.kill()
                    process.wait(5)
                    return t.host_problem(
                        host.name,
                        t.HOST_DEADLINE,
                        _("{host}: no SSH connection within {seconds} s"),
                        "",
                        _(
                            "Is the host up and reachable from the bot (network, firewall)? "
                            "Its `deadline` in HOSTS_FILE bounds the wait."
                        ),
                        seconds=f"{host.deadline:g}",
                    )
                time.sleep(MASTER_POLL)
        return None

    def run(self, host: HostEntry, args: Sequence[str], longer: float = 0.0) -> t.Answer:
        """The CLI's answer to `args` within the host's deadline (plus `longer` seconds: a
        wait the command was asked for, such as `restart --wait`)."""
        started = time.monotonic()
        problem = self.master(host, started + host.deadline)  # connecting: the deadline alone
        until = started + host.deadline + longer
        if problem is not None:
            return t.failed(host, problem, started)
        argv = ssh_argv(host, self.control(host), args, MAX_CONNECT)
        if not self._sessions.acquire(timeout=max(0.0, until - time.monotonic())):
            return t.failed(
                host,
                t.host_problem(
                    host.name,
                    t.HOST_DEADLINE,
                    _("{host}: no free SSH session before its deadline"),
                    f"{self.max_sessions} sessions at once at most",
                    _("Ask fewer hosts at once, or raise the host's `deadline`."),
                ),
                started,
            )
        try:
            remaining = until - time.monotonic()
            try:
                done = subprocess.run(
                    argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=remaining
                )
            except subprocess.TimeoutExpired:
                return t.failed(
                    host,
                    t.host_problem(
                        host.name,
                        t.HOST_DEADLINE,
                        _("{host}: no answer within its deadline ({seconds} s)"),
                        f"dify-ollama {' '.join(args)[:100]}",
                        _(
                            "Raise the host's `deadline` in HOSTS_FILE, or look at the host: a "
                            "check there should finish in seconds."
                        ),
                        seconds=f"{host.deadline + longer:g}",
                    ),
                    started,
                )
        finally:
            self._sessions.release()
        stderr = _text(done.stderr)
        problem = classify(host, done.returncode, stderr)
        if problem is not None:
            return t.failed(host, problem, started)
        data: dict[str, Any] | None = None
        try:
            parsed = json.loads(_text(done.stdout)) if done.stdout.strip() else None
            data = parsed if isinstance(parsed, dict) else None
        except ValueError:
            data = None
        error = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")[:300]
        return t.Answer(host.name, done.returncode, data, None, error, time.monotonic() - started)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            masters = list(self._masters.values())
            self._masters.clear()
            logs = list(self._logs.values())
            self._logs.clear()
        for process in masters:
            stop_process(process)
        for log in logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _word(value: str) -> str:
    """A name or id for the remote CLI: never an option (a leading `-`), never empty."""
    if not value or value.startswith("-") or len(value) > 100:
        raise ValueError(f"not a name: {value[:40]!r}")
    return value


class SshTransport:
    """One host over SSH, on a shared pool."""

    def __init__(self, host: HostEntry, pool: SshPool) -> None:
        if host.ssh is None:
            raise ValueError(f"host {host.name} has no ssh target")
        self._host = host
        self._pool = pool

    @property
    def host(self) -> HostEntry:
        return self._host

    def check(self, only: Sequence[str] = (), chat: bool = False) -> t.Answer:
        args = ["check", *(["--only", ",".join(only)] if only else [])]
        if not chat:
            return self._pool.run(self._host, args)
        return self._pool.run(self._host, [*args, "--chat"], longer=t.chat_allowance(self._host))

    def logs(
        self, service: str, lines: int, since: str | None = None, grep: str | None = None
    ) -> t.Answer:
        # `--opt=VALUE`: a value starting with `-` stays a value for the host's argparse.
        extra = [f"--since={since}"] if since else []
        extra += [f"--grep={grep}"] if grep else []
        return self._pool.run(self._host, ["logs", _word(service), str(int(lines)), *extra])

    def fix_env(self, mode: t.FixMode, ref: str | None = None) -> t.Answer:
        if mode == "apply":
            if ref is None:
                raise ValueError("apply needs the plan id that was shown")
            args = ["fix-env", "--apply", _word(ref)]
        elif mode == "undo":
            args = ["fix-env", "--undo", *([_word(ref)] if ref else [])]
        else:
            args = ["fix-env"]
        return self._pool.run(self._host, args)

    def restart(
        self,
        services: Sequence[str] = (),
        *,
        everything: bool = False,
        wait: float | None = None,
        verify: bool = True,
    ) -> t.Answer:
        args = ["restart", *(_word(s) for s in services)]
        if everything:  # confirmed here (CLI: --yes-really; Slack: the danger button)
            args += ["--all", "--yes-really"]
        if wait is not None:
            args.append(f"--wait={wait:g}")
        if not verify:
            args.append("--no-check")
        # the host waits up to `wait` (else its default) for its containers: the deadline
        # bounds the rest
        from handlers.restart import DEFAULT_WAIT

        return self._pool.run(self._host, args, longer=DEFAULT_WAIT if wait is None else wait)

    def close(self) -> None:
        return None
