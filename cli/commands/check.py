"""`dify-ollama check [--json] [--only ID,...] [--chat]`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.hosts import add_host_argument, check_hosts
from cli.output import print_report
from config.i18n import gettext as _
from config.needs import HOST

if TYPE_CHECKING:
    from config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help=_("diagnose Dify -> Ollama (exit 0 ok, 1 failure, 2 usage/config error)"),
        description=_("Run every probe concurrently with hard deadlines and print a report."),
    )
    parser.add_argument("--json", action="store_true", help=_("print the report as JSON"))
    parser.add_argument(
        "--only", default="", metavar="ID,...", help=_("run only these finding ids (comma list)")
    )
    parser.add_argument(
        "--chat",
        action="store_true",
        help=_(
            "also chat with a configured model from inside Dify (dify.chat; loads the model "
            "if it is not loaded; bounded by CHAT_TIMEOUT)"
        ),
    )
    add_host_argument(parser)
    parser.set_defaults(func=run, settings_used=HOST)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from handlers.check import run_check
    from handlers.probes import FINDING_IDS
    from handlers.timeline import process_start

    only = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = [i for i in only if i not in FINDING_IDS]
    if unknown:
        print(
            _("dify-ollama check: unknown finding id(s): {unknown}; known: {known}").format(
                unknown=", ".join(unknown), known=", ".join(FINDING_IDS)
            ),
            file=sys.stderr,
        )
        return 2
    if args.host is not None:
        return check_hosts(args, settings, only, chat=args.chat)
    chat = "on" if args.chat else "off"
    report = run_check(settings, only, since=process_start(), chat=chat)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report)
    return report.exit_code
