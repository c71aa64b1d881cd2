"""`dify-ollama restart [SERVICE...] [--all --yes-really] [--no-check] [--wait S] [--json]`.

Default: apply configuration (recreate only what changed), wait for running/healthy, then run
a fresh check and exit with its verdict: a restart alone never claims the problem is fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cli.hosts import add_host_argument
from cli.identity import who
from cli.output import fit, print_report, progress
from config.i18n import gettext as _
from config.needs import REPAIR
from handlers.results import HandlerError

if TYPE_CHECKING:  # the handlers load when the command runs: `check` starts faster without them
    from config.settings import Settings
    from handlers.restart import Mode, RestartResult

EXIT_USAGE = 2
DEFAULT_WAIT = 120.0  # handlers.restart.DEFAULT_WAIT, without importing it at start-up
MIN_WAIT, MAX_WAIT = 1.0, 3600.0


def parse_wait(text: str | float) -> float:
    """--wait: seconds, a finite number within MIN_WAIT..MAX_WAIT. `nan` compares false with
    every bound (it would never time out, holding the lock), `inf`/`1e309` never end either."""
    try:
        seconds = float(text)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            _("--wait takes a number of seconds (got {value})").format(value=repr(str(text)[:40]))
        ) from None
    if not math.isfinite(seconds) or not MIN_WAIT <= seconds <= MAX_WAIT:
        raise ValueError(
            _("--wait must be within {low}..{high} seconds (got {value})").format(
                low=f"{MIN_WAIT:g}", high=f"{MAX_WAIT:g}", value=repr(str(text)[:40])
            )
        )
    return seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restart",
        help=_("apply configuration (recreate changed services), then verify with a fresh check"),
        description=_(
            "Without arguments: `compose up -d --no-deps` for the services that share Dify's "
            "environment and those named in the override (Compose recreates the ones whose "
            "configuration changed; after a database fix api, worker and plugin_daemon are "
            "restarted too). SERVICE...: restart those services. --all: `down` then `up -d` "
            "(every container, db and redis included; needs --yes-really). Then a bounded wait "
            "for running/healthy and a fresh check."
        ),
    )
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=_("compose service names"))
    parser.add_argument(
        "--all", action="store_true", help=_("the seed's full `down` + `up -d` (dangerous)")
    )
    parser.add_argument(
        "--yes-really", action="store_true", help=_("confirm --all (it stops every service)")
    )
    parser.add_argument(
        "--wait",
        default=str(DEFAULT_WAIT),
        metavar="SECONDS",
        help=_(
            "how long to wait for running/healthy containers ({low}..{high}, default {default})"
        ).format(low=f"{MIN_WAIT:g}", high=f"{MAX_WAIT:g}", default=f"{DEFAULT_WAIT:g}"),
    )
    parser.add_argument("--no-check", action="store_true", help=_("skip the check afterwards"))
    parser.add_argument("--json", action="store_true", help=_("print the result as JSON"))
    add_host_argument(parser, every=False)
    parser.set_defaults(func=run, settings_used=REPAIR)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        wait = parse_wait(args.wait)
    except ValueError as exc:
        print(_("dify-ollama restart: {error}").format(error=exc), file=sys.stderr)
        return EXIT_USAGE
    if args.all and args.services:
        print(_("dify-ollama restart: --all takes no service names"), file=sys.stderr)
        return EXIT_USAGE
    if args.all and not args.yes_really:
        print(
            _(
                "dify-ollama restart --all stops EVERY service of the Dify stack (db and redis "
                "included: `down` then `up -d`); Dify is unavailable meanwhile. The default "
                "`dify-ollama restart` recreates only what changed. To go ahead anyway: "
                "`dify-ollama restart --all --yes-really`."
            ),
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.host is not None:  # the same checks as here first, then the host's own restart
        from cli.host_changes import restart_on_host

        explicit = wait if args.wait != str(DEFAULT_WAIT) else None
        return restart_on_host(args, settings, explicit)
    mode: Mode = "all" if args.all else "services" if args.services else "apply"
    return restart_and_report(
        settings,
        mode,
        args.services,
        wait=wait,
        check=not args.no_check,
        json_output=args.json,
    )


def restart_and_report(
    settings: Settings,
    mode: Mode = "apply",
    services: Sequence[str] = (),
    *,
    wait: float = DEFAULT_WAIT,
    check: bool = True,
    json_output: bool = False,
) -> int:
    """Restart, print the result as soon as it is known, then the fresh check (or all of it as
    JSON at the end); the exit code covers both. Also `fix-env --yes --restart`."""

    from handlers.check import verification_check
    from handlers.restart import restart_and_check

    def restarted(result: RestartResult) -> None:
        if not json_output:
            print(_("Restart:"))
            print(fit("\n".join(f"  {line}" for line in result.lines())))

    try:
        verified = restart_and_check(
            settings,
            mode,
            services,
            user=who(),
            source="cli",
            wait=wait,
            progress=progress(json_output),
            check=verification_check if check else None,
            restarted=restarted,
        )
    except HandlerError as exc:
        print(_("dify-ollama restart: {error}").format(error=exc), file=sys.stderr)
        return 1
    report = verified.report
    if json_output:
        data: dict[str, Any] = {"restart": verified.restart.to_json()}
        if report is not None:
            data["check"] = report.to_json()
        print(json.dumps(data, indent=2))
    elif report is not None:
        print()
        print_report(report)
    return verified.exit_code
