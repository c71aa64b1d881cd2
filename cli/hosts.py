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
from config.i18n import gettext as _

if TYPE_CHECKING:
    from config.hosts import HostEntry
    from config.settings import Settings
    from handlers.transport import Answer, Transport

EXIT_USAGE = 2


def add_host_argument(parser: argparse.ArgumentParser, *, every: bool = True) -> None:
    parser.add_argument(
        "--host",
        metavar="NAME|all" if every else "NAME",
        help=_("run on that host of HOSTS_FILE (over SSH), or on every host at once")
        if every
        else _("run on that host of HOSTS_FILE (over SSH); one host at a time"),
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
    settings: Settings,
    hosts: tuple[HostEntry, ...],
    op: Callable[[Transport], Answer],
    longer: float = 0.0,
) -> list[Answer]:
    """op on every host at once, connections closed afterwards (`longer`: fan_out's)."""
    from handlers.fanout import fan_out, make_transport
    from handlers.ssh_transport import SshPool

    pool = SshPool() if any(h.ssh is not None for h in hosts) else None
    try:
        transports = [make_transport(settings, h, pool, who(), "cli") for h in hosts]
        return fan_out(transports, op, longer)
    finally:
        if pool is not None:
            pool.close()


def usage(command: str, message: str) -> int:
    """The one-line usage error of `dify-ollama COMMAND` (exit 2)."""
    print(
        _("dify-ollama {command}: {error}").format(command=command, error=message),
        file=sys.stderr,
    )
    return EXIT_USAGE


def on_one_host(
    args: argparse.Namespace,
    settings: Settings,
    command: str,
    op: Callable[[Transport], Answer],
    not_all: str,
    longer: float = 0.0,
) -> tuple[Answer, dict[str, Any]] | int:
    """op on the one host `--host` names: its answer and the JSON it sent, to print as text;
    else the exit code, after the one-line error (`--host all`, a bad hosts file, a host that
    did not answer) or after printing that JSON as it came (`--json`)."""
    if args.host == "all":
        return usage(command, not_all)
    hosts = selected(settings, args.host)
    if hosts is None:
        return EXIT_USAGE
    [answer] = ask(settings, hosts, op, longer)
    if answer.problem is not None:
        print(
            _("dify-ollama {command}: {error}").format(
                command=command, error=answer.problem.summary
            ),
            file=sys.stderr,
        )
        if answer.problem.remedy:
            print(
                _("dify-ollama {command}: {error}").format(
                    command=command, error=answer.problem.remedy
                ),
                file=sys.stderr,
            )
        return 1
    if answer.data is None:
        # the host's CLI wrote this line itself, in the host's language
        error = answer.error or _("no answer")
        print(
            _("dify-ollama {command}: {host}: {error}").format(
                command=command, host=answer.host, error=error
            ),
            file=sys.stderr,
        )
        return answer.exit_code or 1
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    return answer, answer.data


def logs_on_host(args: argparse.Namespace, settings: Settings, service: str, lines: int) -> int:
    """`logs --host NAME`: the host's own redacted log (its CLI's JSON), printed as here."""
    answered = on_one_host(
        args,
        settings,
        "logs",
        lambda tr: tr.logs(service, lines, args.since, args.grep),
        _("--host all works with check only; name one host"),
    )
    if isinstance(answered, int):
        return answered
    answer, data = answered
    for line in data.get("lines") or ():
        print(line)
    described = data.get("description", "")  # in the host's language already
    print(
        _("dify-ollama {command}: {host}: {error}").format(
            command="logs", host=answer.host, error=described
        ),
        file=sys.stderr,
    )
    return answer.exit_code


def check_hosts(
    args: argparse.Namespace, settings: Settings, only: tuple[str, ...], chat: bool = False
) -> int:
    """`check --host NAME|all [--chat]`: one host's report, or the table of every host."""
    from handlers.fanout import overall, summary_rows, summary_text
    from handlers.results import Status

    hosts = selected(settings, args.host)
    if hosts is None:
        return EXIT_USAGE
    from handlers.transport import chat_allowance

    longer = max(chat_allowance(h) for h in hosts) if chat else 0.0
    answers = ask(settings, hosts, lambda tr: tr.check(only, chat), longer)
    rows = summary_rows(answers)
    if args.host != "all":
        report = rows[0].report
        if args.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            print(host_line(rows[0].host))
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


def host_line(host: str) -> str:
    """The line naming the host a report comes from."""
    return _("Host {host}:").format(host=host)
