"""`dify-ollama logs [SERVICE] [LINES] [--since 10m] [--grep TEXT] [--json]`: a redacted log.

stdout gets the log only (so it pipes cleanly); what describes it (stopped container, empty log,
how many values were redacted) goes to stderr. With --json, stdout gets one JSON object (the
lines, still redacted, and what describes them) and stderr only errors, like the other
commands. Exit 0 with a log (even an empty one), 1 when it could not be read, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from cli.hosts import add_host_argument, logs_on_host
from config.i18n import gettext as _
from config.i18n import ngettext
from config.needs import HOST
from handlers.logs import (
    DEFAULT_LINES,
    DEFAULT_SERVICE,
    MAX_LINES,
    LogsUsageError,
    fetch_logs,
    from_positionals,
    parse_grep,
    parse_since,
)
from handlers.results import HandlerError

if TYPE_CHECKING:
    from config.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs",
        help=_("print a Dify service's recent log, secrets redacted"),
        description=_(
            "Print the last LINES lines of a Dify compose service's container log, with "
            "secrets (values from Dify's .env and the container's environment, tokens, "
            "passwords in URLs, API keys) replaced by [REDACTED]. --grep filters within "
            "those LINES lines; it does not search the whole log."
        ),
    )
    parser.add_argument(
        "service",
        nargs="?",
        metavar="SERVICE",
        help=_("compose service (default {service}); a number alone is LINES").format(
            service=DEFAULT_SERVICE
        ),
    )
    parser.add_argument(
        "lines",
        nargs="?",
        metavar="LINES",
        help=_("1..{most} (default {default})").format(most=MAX_LINES, default=DEFAULT_LINES),
    )
    parser.add_argument(
        "--since",
        "-s",
        metavar="WHEN",
        help=_("only lines newer than 30s, 10m, 2h, 1d or an ISO time"),
    )
    parser.add_argument(
        "--grep", "-g", metavar="TEXT", help=_("keep lines containing TEXT (case-insensitive)")
    )
    parser.add_argument(
        "--json", action="store_true", help=_("print the log and what describes it as JSON")
    )
    add_host_argument(parser)
    parser.set_defaults(func=run, settings_used=HOST)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        words = [w for w in (args.service, args.lines) if w is not None]
        service, lines = from_positionals(words)
        since = parse_since(args.since) if args.since is not None else None
        grep = parse_grep(args.grep) if args.grep is not None else None
        if args.host is not None:
            return logs_on_host(args, settings, service, lines)
        result = fetch_logs(settings, service, lines, since=since, grep=grep)
    except LogsUsageError as exc:
        print(_("dify-ollama logs: {error}").format(error=exc), file=sys.stderr)
        return EXIT_USAGE
    except HandlerError as exc:
        print(_("dify-ollama logs: {error}").format(error=exc), file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return EXIT_OK
    if result.text:
        sys.stdout.write(result.text + "\n")
        sys.stdout.flush()
    summary = _("{what} ({container}): {count} lines").format(
        what=result.describe(), container=result.container, count=result.lines_returned
    )
    if result.redactions:
        summary += ", " + ngettext(
            "{count} secret redacted", "{count} secrets redacted", result.redactions
        ).format(count=result.redactions)
    if result.truncated:
        summary += _(", some lines cut to stay within limits")
    print(_("dify-ollama logs: {error}").format(error=summary), file=sys.stderr)
    for note in result.notes:
        print(_("dify-ollama logs: note: {note}").format(note=note), file=sys.stderr)
    return EXIT_OK
