"""`@host` in Slack: check, logs, fix-env and restart on another Dify host (HOSTS_FILE), and
`check @all`. Everything goes through the host's transport (bot/hosts.py): over SSH, the
product's own CLI with `--json` on the host, which redacts before anything leaves it; the
bot's wire guard (bot/context.py) redacts once more what it posts.

The subcommands hand requests with `invocation.host` set to the functions here. Every button
carries its host, and the dispatcher authorizes each click for that host (its `operators`).
Mutating steps keep the CLI's confirmation: fix-env shows the plan made and saved on the host,
Apply applies exactly that plan (`fix-env --apply PLAN_ID`), Undo restores its backup;
`restart @host --all` runs only from a danger button behind Slack's confirmation, as here.
Texts the host sends (findings, plan lines, notes, errors) are in its language already.
"""

from __future__ import annotations

import re
from typing import Any

from bot.render.check import render_finding, render_report
from bot.render.hosts import host_unreachable, on_host, render_summary
from bot.render.limits import actions, code_block, context, section
from bot.render.mrkdwn import code, escape, mention
from bot.subcommands import (
    ACTION_PREFIX,
    Action,
    Click,
    Context,
    Invocation,
    Registry,
    button,
)
from bot.subcommands import logs as logs_command
from bot.subcommands.fix_env import apply_confirmation, render_plan
from bot.subcommands.restart import all_warning
from config.i18n import gettext as _
from handlers.fanout import HostRow, fan_out, overall, summary_rows
from handlers.results import HandlerError, Report, Status
from handlers.transport import Answer, as_report

HOST_CHECK = ACTION_PREFIX + "host:check"
HOST_LOGS = ACTION_PREFIX + "host:logs"
HOST_FIX_PLAN = ACTION_PREFIX + "host:fix-plan"
HOST_FIX_APPLY = ACTION_PREFIX + "host:fix-apply"
HOST_FIX_UNDO = ACTION_PREFIX + "host:fix-undo"
HOST_RESTART = ACTION_PREFIX + "host:restart"
HOST_CHAT = ACTION_PREFIX + "host:chat-test"
BUTTON_LINES = 100
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_SERVICE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")


def _host_of(value: Any, ctx: Context) -> str:
    host = value.get("host") if isinstance(value, dict) else None
    if not isinstance(host, str) or host not in ctx.host_names():
        raise HandlerError(_("this button names no host of HOSTS_FILE any more"))
    return host


def _reached(ctx: Context, answer: Answer, post: Any) -> bool:
    """Post why the host did not answer (its finding with the remedy); True when it did."""
    if answer.problem is None:
        return True
    post(host_unreachable(answer.host, answer.problem.summary, answer.problem.remedy))
    return False


def _data(answer: Answer, what: str) -> dict[str, Any]:
    if answer.data is None:  # answer.error is the host CLI's own line, in its language
        raise HandlerError(
            _("{what} on {host}: {error}").format(
                what=what, host=answer.host, error=answer.error or _("no answer")
            )
        )
    return answer.data


# --- check --------------------------------------------------------------------------------------
def report_buttons(host: str, report: Report) -> list[dict[str, Any]]:
    """A host's buttons: check again, its failing services' logs, a fix-env plan, and the
    chat test when the check did not chat and found the Dify project (as for this machine)."""
    elements = [button(_("Check again"), HOST_CHECK, {"host": host})]
    services = [f.service for f in report.problems if f.service]
    for service in list(dict.fromkeys(services))[:2]:
        value = {"host": host, "service": service, "lines": BUTTON_LINES}
        elements.append(button(_("Logs {service}").format(service=service), HOST_LOGS, value))
    if any(f.fixable and f.status is Status.FAIL for f in report.findings):
        elements.append(button(_("Plan fix-env"), HOST_FIX_PLAN, {"host": host}, style="primary"))
    project = report.finding("dify.project")
    if report.finding("dify.chat") is None and project is not None and project.status is Status.OK:
        elements.append(button(_("Chat test"), HOST_CHAT, {"host": host}))
    return elements


def row_buttons(row: HostRow) -> list[dict[str, Any]]:
    return report_buttons(row.host, row.report)


def check_one(ctx: Context, host: str, requested_by: str) -> str:
    progress = ctx.progress(
        ":hourglass_flowing_sand: "
        + _("Checking Dify ↔ Ollama on host *{host}*… (asked by {who})").format(
            host=escape(host), who=requested_by
        )
    )
    report = as_report(ctx.transport(host).check())
    rendered = render_report(
        report,
        requested_by=requested_by,
        finding_buttons=[],  # the registry's buttons act on this machine, not on `host`
        notes=[on_host(host)],
        report_buttons=report_buttons(host, report),
    )
    progress.update(rendered.text, rendered.blocks)
    return str(report.status)


def check_all(ctx: Context, requested_by: str) -> str:
    names = ctx.host_names()
    progress = ctx.progress(
        ":hourglass_flowing_sand: "
        + _("Checking {count} Dify hosts at once… (asked by {who})").format(
            count=len(names), who=requested_by
        )
    )
    rows = summary_rows(fan_out([ctx.transport(n) for n in names], lambda tr: tr.check()))
    text, blocks = render_summary(rows, requested_by, row_buttons)
    progress.update(text, blocks)
    return str(overall(rows))


def run_check(invocation: Invocation, ctx: Context) -> str:
    assert invocation.host is not None
    if invocation.host == "all":
        return check_all(ctx, invocation.user_mention)
    return check_one(ctx, invocation.host, invocation.user_mention)


def on_check(click: Click, ctx: Context) -> str:
    return check_one(ctx, _host_of(click.value, ctx), click.user_mention)


def on_chat(click: Click, ctx: Context) -> str:
    """The chat test on the button's host (its `check --only dify.chat --chat`), under the
    report it was clicked on."""
    host = _host_of(click.value, ctx)
    waiting = ":hourglass_flowing_sand: " + _(
        "Chat test on host *{host}*: one token from a configured model, from inside Dify "
        "(asked by {who})"
    ).format(host=escape(host), who=click.user_mention)
    ts = ctx.post(click.channel_id, waiting, thread_ts=click.thread_ts)
    report = as_report(ctx.transport(host).check(("dify.chat",), chat=True))
    found = report.finding("dify.chat") or report.findings[0]  # else why the host did not answer
    rendered = render_finding(found, _("Chat test"), click.user_mention)
    ctx.update(click.channel_id, ts, rendered.text, [section(on_host(host)), *rendered.blocks])
    return str(found.status)


# --- logs ---------------------------------------------------------------------------------------
def logs_on(
    ctx: Context,
    host: str,
    service: str,
    lines: int,
    channel: str,
    thread: str | None,
    who: str,
    since: str | None = None,
    grep: str | None = None,
) -> str:
    from handlers.logs import LogResult

    answer = ctx.transport(host).logs(service, lines, since, grep)
    if not _reached(ctx, answer, lambda text: ctx.post(channel, text, thread_ts=thread)):
        return "unreachable"
    data = _data(answer, "logs")
    fields = set(LogResult.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in fields}
    values["text"] = "\n".join(str(line) for line in data.get("lines") or ())
    for name in ("notes", "services"):
        values[name] = tuple(values.get(name) or ())
    result = LogResult(**values)
    message = logs_command.render(
        result, _("{who} on host *{host}*").format(who=who, host=escape(host))
    )
    logs_command.deliver(ctx, channel, thread, message)
    return "empty" if result.empty else "ok"


def run_logs(invocation: Invocation, ctx: Context) -> str:
    assert invocation.host is not None
    request = invocation.options or logs_command.parse(invocation.args)
    return logs_on(
        ctx,
        invocation.host,
        request.service,
        request.lines,
        invocation.channel_id,
        invocation.thread_ts,
        invocation.user_mention,
        since=request.since.text if request.since is not None else None,
        grep=request.grep,
    )


def on_logs(click: Click, ctx: Context) -> str:
    host = _host_of(click.value, ctx)
    service = str(click.value.get("service", ""))
    lines = click.value.get("lines", BUTTON_LINES)
    if not _SERVICE.fullmatch(service) or not isinstance(lines, int) or not 1 <= lines <= 5000:
        raise HandlerError(_("this Logs button is not valid any more"))
    return logs_on(ctx, host, service, lines, click.channel_id, click.thread_ts, click.user_mention)


# --- fix-env ------------------------------------------------------------------------------------
def plan_on(ctx: Context, host: str, user_id: str) -> str:
    from handlers.fix_model import Plan

    progress = ctx.progress(
        ":hourglass_flowing_sand: "
        + _("Checking and planning fix-env on host *{host}*… (asked by {who})").format(
            host=escape(host), who=mention(user_id)
        )
    )
    answer = ctx.transport(host).fix_env("plan")
    if not _reached(ctx, answer, progress.update):
        return "unreachable"
    plan = Plan.from_json(_data(answer, "fix-env"))
    value = {"host": host, "plan": plan.id}
    buttons = [
        button(
            _("Apply"),
            HOST_FIX_APPLY,
            value,
            style="primary",
            confirm=(
                _("Apply this fix on {host}?").format(host=host),
                apply_confirmation(plan),
                _("Apply"),
            ),
        )
    ]
    text, blocks = render_plan(plan, mention(user_id), note=on_host(host), buttons=buttons)
    progress.update(text, blocks)
    ctx.audit("fix-env:planned", host=host, plan=plan.id, summary=plan.summary())
    return "planned"


def undo_button(host: str, backup_id: str | None) -> dict[str, Any]:
    return button(
        _("Undo"),
        HOST_FIX_UNDO,
        {"host": host, "backup": backup_id},
        style="danger",
        confirm=(
            _("Undo the fix on {host}?").format(host=host),
            _(
                "Restores .env, the compose override and the database rows byte for byte from "
                "the backup (then restart again to apply it)."
            ),
            _("Undo"),
        ),
    )


def run_fix_env(invocation: Invocation, ctx: Context) -> str:
    assert invocation.host is not None
    if invocation.options == "undo":
        text = ":leftwards_arrow_with_hook: " + _(
            "Undo the latest fix-env on host *{host}*? It restores .env, the compose override "
            "and the database rows from its backup."
        ).format(host=escape(invocation.host))
        ctx.reply(text, [section(text), actions([undo_button(invocation.host, None)])])
        return "confirm-asked"
    return plan_on(ctx, invocation.host, invocation.user_id)


def on_fix_plan(click: Click, ctx: Context) -> str:
    return plan_on(ctx, _host_of(click.value, ctx), click.user_id)


def on_fix_apply(click: Click, ctx: Context) -> str:
    host = _host_of(click.value, ctx)
    plan_id = str(click.value.get("plan", ""))
    if not _ID.fullmatch(plan_id):
        raise HandlerError(_("this Apply button names no plan"))
    post = _poster(ctx, click)
    answer = ctx.transport(host).fix_env("apply", plan_id)
    if not _reached(ctx, answer, post):
        return "unreachable"
    applied = _data(answer, "fix-env apply").get("applied") or {}
    backup = str(applied.get("backup_id", ""))
    changed = [f"• {escape(str(c))}" for c in applied.get("changed") or ()]
    changed += [f"• :warning: {escape(str(w))}" for w in applied.get("warnings") or ()]
    text = ":white_check_mark: " + _("fix-env applied on host *{host}* by {who}").format(
        host=escape(host), who=click.user_mention
    )
    services = [s for s in applied.get("restart_services") or () if _SERVICE.fullmatch(str(s))]
    elements = [undo_button(host, backup if _ID.fullmatch(backup) else None)]
    if services:
        restart_value = {"host": host, "services": services[:10]}
        elements.insert(0, button(_("Restart affected services"), HOST_RESTART, restart_value))
    ctx.audit("fix-env:applied", host=host, plan=plan_id, backup=backup)
    post(
        text,
        [
            section(text + "\n" + "\n".join(changed)),
            actions(elements),
            context(_("backup {id} on {host}").format(id=code(backup), host=escape(host))),
        ],
    )
    return "applied"


def on_fix_undo(click: Click, ctx: Context) -> str:
    host = _host_of(click.value, ctx)
    backup = click.value.get("backup")
    if backup is not None and not (isinstance(backup, str) and _ID.fullmatch(backup)):
        raise HandlerError(_("this Undo button names no backup"))
    post = _poster(ctx, click)
    answer = ctx.transport(host).fix_env("undo", backup)
    if not _reached(ctx, answer, post):
        return "unreachable"
    data = _data(answer, "fix-env undo")
    if "error" in data:  # files changed after the fix: the CLI refuses, and says so
        text = ":warning: " + _("Undo on *{host}* refused: {error}").format(
            host=escape(host), error=escape(str(data["error"]))
        )
        post(text, [section(text)])
        return "conflict"
    restored = [f"• {escape(str(r))}" for r in data.get("restored") or ()]
    text = ":leftwards_arrow_with_hook: " + _("fix-env undone on host *{host}* by {who}").format(
        host=escape(host), who=click.user_mention
    )
    ctx.audit("fix-env:undone", host=host, backup=str(data.get("backup_id", "")))
    post(text, [section(text + "\n" + "\n".join(restored))])
    return "undone"


def _poster(ctx: Context, click: Click) -> Any:
    def post(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        ctx.post(click.channel_id, text, blocks, thread_ts=click.thread_ts)

    return post


# --- restart ------------------------------------------------------------------------------------
def restart_on(
    ctx: Context,
    host: str,
    services: tuple[str, ...],
    user_id: str,
    post: Any,
    everything: bool = False,
) -> str:
    if everything:
        what = _("the whole stack (down + up -d)")
    else:
        what = escape(", ".join(services) or _("the services whose configuration changed"))
    progress = ctx.progress(
        ":arrows_counterclockwise: "
        + _("Restarting {what} on host *{host}*… (by {who})").format(
            what=what, host=escape(host), who=mention(user_id)
        )
    )
    answer = ctx.transport(host).restart(services, everything=everything)
    if not _reached(ctx, answer, progress.update):
        return "unreachable"
    data = _data(answer, "restart")
    lines = [
        *(f"$ {c}" for c in (data.get("restart") or {}).get("commands") or ()),
        *(str(n) for n in (data.get("restart") or {}).get("notes") or ()),
    ]
    check = data.get("check")
    report = as_report(Answer(host, answer.exit_code, check)) if check else None
    healthy = report is not None and report.exit_code == 0
    verdict = (
        ":white_check_mark: " + _("Verified: no failing finding after the restart.")
        if healthy
        else ":x: " + _("Still failing after the restart: see the findings below.")
    )
    text = f"{verdict} ({escape(host)})"
    blocks = [section(f"{on_host(host)}\n{verdict}")]
    if lines:
        blocks.append(section(code_block("\n".join(lines), 2900)))
    progress.update(text, blocks)
    if report is not None:
        rendered = render_report(
            report,
            requested_by=mention(user_id),
            finding_buttons=[],
            notes=[on_host(host), _("_Re-check after the restart._")],
            report_buttons=report_buttons(host, report),
        )
        post(rendered.text, rendered.blocks)
    ctx.audit("restart:done", host=host, services=list(services), all=everything, healthy=healthy)
    return "ok" if healthy else "still-failing"


def run_restart(invocation: Invocation, ctx: Context) -> str:
    assert invocation.host is not None
    options = invocation.options
    if getattr(options, "all", False):  # as for this machine: only from a confirmed button
        host = invocation.host
        text = ":warning: " + _("On host *{host}*: {warning}").format(
            host=escape(host), warning=all_warning()
        )
        confirm = (
            _("Stop and restart the whole Dify stack on {host}?").format(host=host),
            _(
                "Every service stops (db and redis included) and Dify is unavailable until "
                "all are back."
            ),
            _("Restart everything"),
        )
        restart_all = button(
            _("Restart everything (down + up)"),
            HOST_RESTART,
            {"host": host, "all": True},
            style="danger",
            confirm=confirm,
        )
        ctx.reply(
            text,
            [
                section(text),
                actions([restart_all]),
                context(_("asked by {who}").format(who=invocation.user_mention)),
            ],
        )
        return "confirm-asked"
    services = tuple(getattr(options, "services", ()) or ())

    def post(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        ctx.reply(text, blocks)

    return restart_on(ctx, invocation.host, services, invocation.user_id, post)


def on_restart(click: Click, ctx: Context) -> str:
    host = _host_of(click.value, ctx)
    everything = click.value.get("all") is True
    services = tuple(
        str(s) for s in click.value.get("services") or () if _SERVICE.fullmatch(str(s))
    )
    if everything and services:
        raise HandlerError(_("this Restart button is not valid any more"))
    return restart_on(ctx, host, services, click.user_id, _poster(ctx, click), everything)


def register(registry: Registry) -> None:
    registry.add_host_run("check", run_check)
    registry.add_host_run("logs", run_logs)
    registry.add_host_run("fix-env", run_fix_env)
    registry.add_host_run("restart", run_restart)
    registry.add_action(Action(HOST_CHECK, mutating=False, run=on_check, command="host:check"))
    registry.add_action(Action(HOST_LOGS, mutating=False, run=on_logs, command="host:logs"))
    registry.add_action(
        Action(HOST_CHAT, mutating=False, run=on_chat, command="host:check:chat-test")
    )
    for action_id, run, command in (
        (HOST_FIX_PLAN, on_fix_plan, "host:fix-env:plan"),
        (HOST_FIX_APPLY, on_fix_apply, "host:fix-env:apply"),
        (HOST_FIX_UNDO, on_fix_undo, "host:fix-env:undo"),
        (HOST_RESTART, on_restart, "host:restart"),
    ):
        registry.add_action(Action(action_id, mutating=True, run=run, command=command))
