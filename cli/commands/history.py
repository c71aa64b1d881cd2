"""`dify-ollama history [--since 24h] [--png PATH] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.i18n import gettext as _
from config.needs import HISTORY

if TYPE_CHECKING:
    from config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help=_("incidents, actions and a latency/status chart from the recorded checks"),
        description=_(
            "The timeline of incidents (start, end, findings, actions taken) from the "
            "history the bot records under STATE_DIR; --png writes a chart of Ollama's reach "
            "latency from plugin_daemon and the check status over the window."
        ),
    )
    parser.add_argument("--since", default="24h", help=_("window: 90m, 24h, 7d, 2w (default 24h)"))
    parser.add_argument("--png", type=Path, default=None, metavar="PATH", help=_("write the chart"))
    parser.add_argument("--json", action="store_true", help=_("print the timeline as JSON"))
    parser.set_defaults(func=run, settings_used=HISTORY)


def _error(message: str) -> int:
    print(_("dify-ollama history: {error}").format(error=message), file=sys.stderr)
    return 2


def run(args: argparse.Namespace, settings: Settings) -> int:
    from handlers.history import open_history
    from handlers.history_timeline import build_timeline, parse_since, timeline_lines
    from handlers.results import HandlerError

    try:
        seconds = parse_since(args.since)
    except ValueError as exc:
        return _error(f"--since: {exc}")
    if args.png is not None and (args.png.is_dir() or not args.png.parent.is_dir()):
        return _error(f"--png: {args.png} is a folder or its folder does not exist")
    history = open_history(settings.state_path, settings.history_days)
    now = time.time()
    since = now - seconds
    checks = history.checks_since(since)
    timeline = build_timeline(
        checks, history.actions_between(since, now), since, now, history.problem
    )
    history.close()
    if args.json:
        print(json.dumps(timeline.to_json(), indent=2))
    else:
        print("\n".join(timeline_lines(timeline)))
    if args.png is not None:
        try:
            from handlers.history_chart import render_png

            args.png.write_bytes(render_png(timeline))
        except HandlerError as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"--png: cannot write {args.png}: {exc.strerror}")
        if not args.json:
            print(_("chart written to {path}").format(path=args.png))
    return 1 if timeline.problem else 0
