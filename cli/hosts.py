"""`--host NAME|all`: the same command on other Dify hosts (HOSTS_FILE), over SSH.

A bad hosts file or an unknown name is a usage error (exit 2, one line). Each host answers
with its own report or with a finding saying why it could not (down, refused, wrong host key,
no dify-ollama there); `all` prints one table, worst host first.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.identity import who
from cli.output import print_report, width

if TYPE_CHECKING:
    from config.hosts import HostEntry
    from config.settings import Settings
    from handlers.transport import Answer, Transport

EXIT_USAGE = 2


def add_host_argument(parser: argparse.ArgumentParser, *, every: bool = True) -> None:
    parser.add_argument(
        "--host",
        metavar="NAME|all" if every else "NAME",
        help="run on that host of HOSTS_FILE (over SSH), or on every host at once"
        if every
        else "run on that host of HOSTS_FILE (over SSH); one host at a time",
    )


def selected(settings: Settings, name: str) -> tuple[HostEntry, ...] | None:
    """The hosts `--host` names, or None after printing the one-line error."""
    from config.hosts import load_hosts
    from config.settings import ConfigError

    try:
        return load_hosts(settings.hosts_file).select(name)
    except ConfigError as exc:
        print(f"dify-ollama: {exc}", file=sys.stderr)
        return None


def ask(
    settings: Settings, hosts: tuple[HostEntry, ...], op: Callable[[Transport], Answer]
) -> list[Answer]:
    """op on every host at once, connections closed afterwards."""
    from handlers.fanout import fan_out, make_transport
    from handlers.ssh_transport import SshPool

    pool = SshPool() if any(h.ssh is not None for h in hosts) else None
    try:
        transports = [make_transport(settings, h, pool, who(), "cli") for h in hosts]
        return fan_out(transports, op)
    finally:
        if pool is not None:
            pool.close()


def on_one_host(
    args: argparse.Namespace,
    settings: Settings,
    command: str,
    op: Callable[[Transport], Answer],
    not_all: str,
) -> Answer | int:
    """op on the one host `--host` names: its answer with the CLI's JSON, or the exit code
    after the one-line error (`--host all`, a bad hosts file, a host that did not answer)."""
    if args.host == "all":
        print(f"dify-ollama {command}: --host all {not_all}", file=sys.stderr)
        return EXIT_USAGE
    hosts = selected(settings, args.host)
    if hosts is None:
        return EXIT_USAGE
    [answer] = ask(settings, hosts, op)
    if answer.problem is not None:
        print(f"dify-ollama {command}: {answer.problem.summary}", file=sys.stderr)
        if answer.problem.remedy:
            print(f"dify-ollama {command}: {answer.problem.remedy}", file=sys.stderr)
        return 1
    if answer.data is None:
        print(
            f"dify-ollama {command}: {answer.host}: {answer.error or 'no answer'}", file=sys.stderr
        )
        return answer.exit_code or 1
    return answer


def logs_on_host(args: argparse.Namespace, settings: Settings, service: str, lines: int) -> int:
    """`logs --host NAME`: the host's own redacted log (its CLI's JSON), printed as here."""
    answer = on_one_host(
        args,
        settings,
        "logs",
        lambda tr: tr.logs(service, lines, args.since, args.grep),
        "works with check only; name one host",
    )
    if isinstance(answer, int):
        return answer
    assert answer.data is not None
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    for line in answer.data.get("lines") or ():
        print(line)
    described = answer.data.get("description", "")
    print(f"dify-ollama logs: {answer.host}: {described}", file=sys.stderr)
    return answer.exit_code


def check_hosts(args: argparse.Namespace, settings: Settings, only: tuple[str, ...]) -> int:
    from handlers.fanout import overall, summary_rows, summary_text
    from handlers.results import Status

    hosts = selected(settings, args.host)
    if hosts is None:
        return EXIT_USAGE
    answers = ask(settings, hosts, lambda tr: tr.check(only))
    rows = summary_rows(answers)
    if args.host != "all":
        report = rows[0].report
        if args.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            print(f"Host {rows[0].host}:")
            print_report(report)
        return report.exit_code
    if args.json:
        data: dict[str, Any] = {
            "status": str(overall(rows)),
            "hosts": [
                {
                    "host": r.host,
                    "status": str(r.status),
                    "seconds": round(r.seconds, 3),
                    "report": r.report.to_json(),
                }
                for r in rows
            ],
        }
        print(json.dumps(data, indent=2))
    else:
        print(summary_text(rows, width()), end="")
    return 1 if any(r.status in (Status.FAIL, Status.SKIP) for r in rows) else 0
