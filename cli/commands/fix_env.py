"""`dify-ollama fix-env [--yes [--restart]] [--apply PLAN_ID] [--undo [BACKUP_ID]] [--json]`.

Without flags it prints the plan (a diff with secret values masked) and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.commands.restart import restart_and_report
from cli.hosts import add_host_argument
from cli.identity import who
from cli.output import fit, progress
from config.i18n import gettext as _
from config.needs import REPAIR
from handlers.results import HandlerError

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.fix_undo import UndoConflict


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fix-env",
        help=_("plan (and with --yes apply) the repairs check calls for; --undo restores"),
        description=_(
            "Plan the repairs that the current check findings call for (.env, a compose "
            "override mapping host.docker.internal, Ollama base URLs in Dify's database and "
            "its Redis cache) and print them with secret values masked. --yes applies the plan "
            "(lock, backup, atomic writes); --undo restores the most recent backup."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--yes", "-y", action="store_true", help=_("apply the plan printed"))
    # Not in the group: argparse would print the group on one line wider than 60 columns.
    parser.add_argument(
        "--apply",
        metavar="PLAN_ID",
        help="apply the saved plan PLAN_ID exactly as it was shown (what the bot's Apply "
        "button runs on another host)",
    )
    mode.add_argument(
        "--undo",
        nargs="?",
        const="latest",
        metavar="BACKUP_ID",
        help=_("restore the most recent fix-env backup (or BACKUP_ID)"),
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help=_("with --yes or --undo: then run `restart` (apply configuration) and a fresh check"),
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=_(
            "with --undo: restore files even if they changed after the fix (the current "
            "files are saved first)"
        ),
    )
    parser.add_argument("--json", action="store_true", help=_("print the plan/result as JSON"))
    add_host_argument(parser, every=False)
    parser.set_defaults(func=run, settings_used=REPAIR)


def _fail(message: str) -> int:
    print(_("dify-ollama fix-env: {error}").format(error=message), file=sys.stderr)
    return 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    from handlers import fix_apply, fix_plan, fix_undo

    if args.apply and (args.yes or args.undo):
        print("dify-ollama fix-env: --apply goes alone (not with --yes or --undo)", file=sys.stderr)
        return 2
    if args.restart and not (args.yes or args.undo or args.apply):
        print(_("dify-ollama fix-env: --restart needs --yes or --undo"), file=sys.stderr)
        return 2
    if args.force and not args.undo:
        print(_("dify-ollama fix-env: --force goes with --undo"), file=sys.stderr)
        return 2
    if args.host is not None:
        from cli.host_changes import fix_env_on_host

        return fix_env_on_host(args, settings)
    try:
        if args.undo:
            backup_id = None if args.undo == "latest" else args.undo
            try:
                result = fix_undo.undo(
                    settings,
                    user=who(),
                    source="cli",
                    backup_id=backup_id,
                    progress=progress(args.json),
                    force=args.force,
                )
            except fix_undo.UndoConflict as exc:
                return _conflict(exc, args.json)
            if args.json:
                print(json.dumps(result.to_json(), indent=2))
            else:
                print(_("Undone fix-env backup {id}:").format(id=result.backup_id))
                print(fit("\n".join(f"  {line}" for line in result.lines())))
            return _then(args, settings)

        if args.apply:
            plan = fix_plan.load_plan(settings, args.apply)
            applied = fix_apply.apply_plan(
                settings, plan.id, user=who(), source="cli", progress=progress(args.json)
            )
            if args.json:
                print(json.dumps({"plan": plan.to_json(), "applied": applied.to_json()}, indent=2))
            else:
                print(f"Applied fix-env plan {plan.id}:")
                print(fit("\n".join(f"  {line}" for line in applied.lines())))
            return _then(args, settings)

        from handlers.check import run_check

        report = run_check(settings)
        plan = fix_plan.make_plan(settings, report)
        if args.json and not args.yes:
            print(json.dumps(plan.to_json(), indent=2))
            return 0
        if not args.json:
            print(fit(plan.render()))
        if not args.yes:
            if plan.has_changes:
                print(
                    fit(
                        "\n"
                        + _(
                            "Nothing was changed. Apply this plan with `dify-ollama fix-env --yes`."
                        )
                    )
                )
            return 0
        if not plan.has_changes:
            return 0 if not plan.unfixed else 1
        applied = fix_apply.apply_plan(
            settings, plan.id, user=who(), source="cli", progress=progress(args.json)
        )
        if args.json:
            print(json.dumps({"plan": plan.to_json(), "applied": applied.to_json()}, indent=2))
        else:
            print("\n" + _("Applied:"))
            print(fit("\n".join(f"  {line}" for line in applied.lines())))
        return _then(args, settings)
    except HandlerError as exc:
        return _fail(str(exc))


def _conflict(exc: UndoConflict, json_output: bool) -> int:
    """An undo refused because files changed after the fix: what changed, and how to force."""
    command = f"dify-ollama fix-env --undo {exc.backup_id} --force"
    if json_output:
        print(
            json.dumps(
                {"error": str(exc), "changed": exc.paths, "diff": exc.diff, "force": command},
                indent=2,
            )
        )
    else:
        print(_("Changed since the fix (secrets masked):"))
        print(exc.diff)
        print(
            "\n" + _("To restore the backup over those changes: {command}").format(command=command)
        )
    print(_("dify-ollama fix-env: {error}").format(error=exc), file=sys.stderr)
    return 1


def _then(args: argparse.Namespace, settings: Settings) -> int:
    """After an apply or an undo: restart and verify (--restart), or say that it is needed."""
    if args.restart:
        return restart_and_report(settings, json_output=args.json)
    if not args.json:
        print(
            fit(
                "\n"
                + _(
                    "The running containers still have the old configuration: run "
                    "`dify-ollama restart` to recreate the affected services and verify."
                )
            )
        )
    return 0
