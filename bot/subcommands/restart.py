"""`restart` in Slack, and the "Restart affected services" button fix-env posts.

Progress is edited in place (chat.update), then a fresh check is posted in the thread: a
restart never claims the problem is fixed, the re-check says whether it is. `restart --all`
(down + up) only ever runs from a danger button behind Slack's confirmation dialog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.delivery import deliver, quietly
from bot.render.check import render_report
from bot.render.limits import MAX_BLOCKS, actions, code_block, context, section
from bot.render.mrkdwn import code, escape
from bot.render.people import error_text, mention
from bot.subcommands import (
    ACTION_PREFIX,
    Action,
    Click,
    ClickFn,
    Context,
    Invocation,
    Registry,
    Subcommand,
    UsageError,
    button,
)
from config.i18n import gettext as _
from handlers.mutation_lock import AlreadyDone, Busy, precheck
from handlers.report_text import render_text
from handlers.results import HandlerError

if TYPE_CHECKING:
    from handlers.restart import Mode, RestartResult

RESTART_APPLY = ACTION_PREFIX + "restart:apply"
RESTART_ALL = ACTION_PREFIX + "restart:all"
USAGE = "restart [SERVICE...] | restart --all"
_SERVICE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


def all_warning() -> str:
    return _(
        "`restart --all` is the seed's `down` + `up -d`: it stops *every* service of the Dify "
        "stack, db and redis included, and Dify is unavailable until all are back. The default "
        "`restart` recreates only the services whose configuration changed."
    )


@dataclass(frozen=True)
class RestartOptions:
    services: tuple[str, ...] = ()
    all: bool = False


def parse(args: tuple[str, ...]) -> RestartOptions:
    services: list[str] = []
    everything = False
    for arg in args:
        if arg == "--all":
            everything = True
        elif arg.startswith("-"):
            raise UsageError(_("unknown option {option}").format(option=code(arg, 40)))
        elif _SERVICE.match(arg):
            services.append(arg)
        else:
            raise UsageError(_("{name} is not a service name").format(name=code(arg, 40)))
    if everything and services:
        raise UsageError(_("`--all` takes no service names"))
    return RestartOptions(tuple(dict.fromkeys(services)), everything)


class _Live:
    """One progress line for the restart: edited in place in the channel (chat.update), or
    ephemeral (see Context.progress). Progress lines never stop the restart; the outcome is
    retried (bot.delivery) and, if Slack still refuses it, only logged."""

    def __init__(self, ctx: Context, head: str) -> None:
        self.head = head
        self.lines: list[str] = []
        self.progress = ctx.progress(head)
        self.ts = self.progress.ts

    def __call__(self, line: str) -> None:
        self.lines = [*self.lines[-5:], line]
        body = self.head + "\n" + "\n".join(f"• {escape(x)}" for x in self.lines)
        quietly(
            "restart progress", lambda: self.progress.update(body, [section(body)], transient=True)
        )

    def done(self, text: str, blocks: list[dict[str, Any]]) -> None:
        deliver("restart outcome", lambda: self.progress.update(text, blocks))


def run_restart(
    ctx: Context,
    *,
    channel: str,
    thread_ts: str | None,
    user_id: str,
    mode: Mode,
    services: tuple[str, ...] = (),
    key: str | None = None,
) -> str:
    """Restart (apply | services | all), edit progress in place, then post a fresh check in
    the thread. Returns the audit outcome. Once the restart began, a Slack failure is retried
    and logged, never raised: the host work stands and the audit line says what happened."""
    from handlers.restart import restart_and_check

    if refused_early(ctx, key):
        return "duplicate"
    what = {
        "apply": _("Applying configuration (recreating what changed)"),
        "services": _("Restarting {services}").format(services=escape(", ".join(services))),
        "all": _("Restarting the whole stack (down + up -d)"),
    }[mode]
    live = _Live(
        ctx,
        ":arrows_counterclockwise: "
        + _("{what}… (by {who})").format(what=what, who=mention(user_id)),
    )
    thread = thread_ts or live.ts

    def restarted(result: RestartResult) -> None:
        # Shown while the check that follows runs.
        ctx.audit(
            "restart:done",
            mode=mode,
            recreated=list(result.recreated),
            restarted=list(result.restarted),
            not_ready=list(result.not_ready),
        )
        icon = ":white_check_mark:" if result.ready else ":warning:"
        summary = (
            icon
            + " "
            + (
                _("{what}: done in {seconds} s (by {who})").format(
                    what=what, seconds=f"{result.duration_ms / 1000:.1f}", who=mention(user_id)
                )
                if result.ready
                else _("{what}: not ready in time: {services}").format(
                    what=what, services=escape(", ".join(result.not_ready))
                )
            )
        )
        evidence = code_block("\n".join(result.lines()), 2900)
        live.done(summary, [section(summary), section(evidence)])

    try:
        verified = restart_and_check(
            ctx.settings,
            mode,
            services,
            user=user_id,
            source="slack",
            key=key,
            progress=live,
            restarted=restarted,
        )
    except (AlreadyDone, Busy) as exc:
        message = error_text(exc)
        live.done(f":information_source: {message}", [section(f":information_source: {message}")])
        return "busy" if isinstance(exc, Busy) else "duplicate"
    except HandlerError as exc:
        ctx.audit("restart:failed", mode=mode, error=str(exc)[:300])
        text = ":x: " + _("Restart failed: {error}").format(error=error_text(exc))
        live.done(text, [section(text)])
        return "failed"
    report = verified.report
    assert report is not None  # restart_and_check checks unless told not to
    rendered = render_report(
        report,
        requested_by=mention(user_id),
        finding_buttons=ctx.registry.finding_buttons,
        notes=[_("_Re-check after the restart._")],
        max_blocks=MAX_BLOCKS - 1,
    )
    verdict = (
        ":white_check_mark: " + _("Verified: no failing finding after the restart.")
        if report.exit_code == 0
        else ":x: " + _("Still failing after the restart: see the findings below.")
    )
    text, blocks = f"{verdict} {rendered.text}", [section(verdict), *rendered.blocks]
    if live.ts is not None and thread is not None:
        deliver("re-check report", lambda: ctx.post(channel, text, blocks, thread))
        if rendered.degraded:
            deliver(
                "full re-check report",
                lambda: ctx.upload_text(
                    channel, thread, "check-report.txt", render_text(report), _("Full check report")
                ),
            )
    else:  # ephemeral replies
        deliver("re-check report", lambda: ctx.reply(text, blocks))
    return "ok" if verified.healthy else "still-failing"


def refused_early(ctx: Context, key: str | None) -> bool:
    """Tell a double click, a retried delivery or a request during another change what is
    going on (only to the user who clicked) before posting anything. The real guard is the
    lock and the idempotency record inside the handler; this only avoids noise."""
    try:
        precheck(ctx.settings.state_path, key)
    except (AlreadyDone, Busy) as exc:
        ctx.ephemeral(f":information_source: {error_text(exc)}")
        return True
    return False


def run(invocation: Invocation, ctx: Context) -> str:
    opts: RestartOptions = invocation.options or RestartOptions()
    if opts.all:
        text = f":warning: {all_warning()}"
        ctx.reply(
            text,
            [
                section(text),
                actions(
                    [
                        button(
                            _("Restart everything (down + up)"),
                            RESTART_ALL,
                            {"all": True},
                            style="danger",
                            confirm=(
                                _("Stop and restart the whole Dify stack?"),
                                _(
                                    "Every service stops (db and redis included) and Dify is "
                                    "unavailable until all are back."
                                ),
                                _("Restart everything"),
                            ),
                        )
                    ]
                ),
                context(_("asked by {who}").format(who=invocation.user_mention)),
            ],
        )
        return "confirm-asked"
    return run_restart(
        ctx,
        channel=invocation.channel_id,
        thread_ts=invocation.thread_ts,
        user_id=invocation.user_id,
        mode="services" if opts.services else "apply",
        services=opts.services,
        key=f"restart:{invocation.request_id}" if invocation.request_id else None,
    )


def _on_click(mode: Mode, kind: str) -> ClickFn:
    """A button that restarts `mode`, once per message it is on."""

    def on_click(click: Click, ctx: Context) -> str:
        return run_restart(
            ctx,
            channel=click.channel_id,
            thread_ts=click.thread_ts,
            user_id=click.user_id,
            mode=mode,
            key=f"{kind}:{click.channel_id}:{click.message_ts or click.request_id}",
        )

    return on_click


def restart_button(value: dict[str, Any] | None = None) -> dict[str, Any]:
    return button(_("Restart affected services"), RESTART_APPLY, value or {}, style="primary")


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="restart",
            usage=USAGE,
            summary=_("Apply configuration (recreate only what changed), then re-check"),
            mutating=True,
            run=run,
            parse=parse,
        )
    )
    on_apply, on_all = _on_click("apply", "restart"), _on_click("all", "restart-all")
    registry.add_action(Action(RESTART_APPLY, mutating=True, run=on_apply, command="restart:apply"))
    registry.add_action(Action(RESTART_ALL, mutating=True, run=on_all, command="restart:all"))
