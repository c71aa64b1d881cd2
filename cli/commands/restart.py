"""`dify-ollama restart [SERVICE...] [--all --yes-really] [--no-check] [--wait S] [--json]`.

Default: apply configuration (recreate only what changed), wait for running/healthy, then run
a fresh check and exit with its verdict: a restart alone never claims the problem is fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from handlers.results import HandlerError

EXIT_USAGE = 2
MIN_WAIT, MAX_WAIT = 1.0, 3600.0


def parse_wait(text: str | float) -> float:
    """--wait: seconds, a finite number within MIN_WAIT..MAX_WAIT. `nan` compares false with
    every bound (it would never time out, holding the lock), `inf`/`1e309` never end either."""
    try:
        seconds = float(text)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"--wait takes a number of seconds (got {str(text)[:40]!r})") from None
    if not math.isfinite(seconds) or not MIN_WAIT <= seconds <= MAX_WAIT:
        raise ValueError(
            f"--wait must be within {MIN_WAIT:g}..{MAX_WAIT:g} seconds (got {str(text)[:40]!r})"
        )
    return seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restart",
        help="apply configuration (recreate changed services), then verify with a fresh check",
        description=(
            "Without arguments: `compose up -d --no-deps` for the services that share Dify's "
            "environment and those named in the override (Compose recreates the ones whose "
            "configuration changed; after a database fix api, worker and plugin_daemon are "
            "restarted too). SERVICE...: restart those services. --all: `down` then `up -d` "
            "(every container, db and redis included; needs --yes-really). Then a bounded wait "
            "for running/healthy and a fresh check."
        ),
    )
    parser.add_argument("services", nargs="*", metavar="SERVICE", help="compose service names")
    parser.add_argument(
        "--all", action="store_true", help="the seed's full `down` + `up -d` (dangerous)"
    )
    parser.add_argument(
        "--yes-really", action="store_true", help="confirm --all (it stops every service)"
    )
    parser.add_argument(
        "--wait",
        default="120",
        metavar="SECONDS",
        help=f"how long to wait for running/healthy containers ({MIN_WAIT:g}..{MAX_WAIT:g}, "
        "default 120)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the check afterwards")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _progress(json_output: bool) -> Callable[[str], None]:
    if json_output:
        return lambda _text: None
    return lambda text: print(f"  ... {text}", flush=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.commands.fix_env import who
    from handlers import restart

    try:
        wait = parse_wait(args.wait)
    except ValueError as exc:
        print(f"dify-ollama restart: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.all and args.services:
        print("dify-ollama restart: --all takes no service names", file=sys.stderr)
        return EXIT_USAGE
    if args.all and not args.yes_really:
        print(
            "dify-ollama restart --all stops EVERY service of the Dify stack (db and redis "
            "included: `down` then `up -d`); Dify is unavailable meanwhile. The default "
            "`dify-ollama restart` recreates only what changed. To go ahead anyway: "
            "`dify-ollama restart --all --yes-really`.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    progress = _progress(args.json)
    try:
        if args.all:
            result = restart.restart_all(
                settings, user=who(), source="cli", wait=wait, progress=progress
            )
        elif args.services:
            result = restart.restart_services(
                settings,
                args.services,
                user=who(),
                source="cli",
                wait=wait,
                progress=progress,
            )
        else:
            result = restart.apply_configuration(
                settings, user=who(), source="cli", wait=wait, progress=progress
            )
    except HandlerError as exc:
        print(f"dify-ollama restart: {exc}", file=sys.stderr)
        return 1
    return _report(result, settings, check=not args.no_check, json_output=args.json)


def _report(result: Any, settings: Settings, *, check: bool, json_output: bool) -> int:
    data: dict[str, Any] = {"restart": result.to_json()}
    if not json_output:
        print("Restart:")
        print("\n".join(f"  {line}" for line in result.lines()))
    code = 0 if result.ready else 1
    if check:
        from handlers.check import run_check

        report = run_check(settings)
        data["check"] = report.to_json()
        if not json_output:
            from cli.render import render_text

            print()
            print(render_text(report, color=sys.stdout.isatty()), end="")
        code = max(code, report.exit_code)
    if json_output:
        print(json.dumps(data, indent=2))
    return code


def apply_and_verify(settings: Settings, json_output: bool = False) -> int:
    """`restart` (apply configuration) plus the fresh check, for `fix-env --yes --restart`."""
    from cli.commands.fix_env import who
    from handlers import restart

    try:
        result = restart.apply_configuration(
            settings, user=who(), source="cli", progress=_progress(json_output)
        )
    except HandlerError as exc:
        print(f"dify-ollama restart: {exc}", file=sys.stderr)
        return 1
    return _report(result, settings, check=True, json_output=json_output)
