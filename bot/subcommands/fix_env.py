"""`fix-env` in Slack: the plan with Apply (confirmation dialog) and Cancel, then "Restart
affected services" and "Undo"; plus a "Fix" button on the check report's fixable finding.

The canonical incident takes three clicks from `/dify-ollama check`: Fix (posts the plan in the
report's thread), Apply (confirm; applies with a backup), Restart affected services (recreates,
waits, re-checks in the thread). Every button is mutating, so the dispatcher re-authorizes the
clicking user against OPERATORS on every click; applying a plan, an undo and a restart each run
at most once (idempotency keys), whatever the number of clicks or retried deliveries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.delivery import deliver, quietly
from bot.render.limits import (
    MAX_MESSAGE_TEXT,
    MAX_SECTION,
    actions,
    code_block,
    context,
    header,
    section,
    split_lines,
    text_size,
    truncate,
)
from bot.render.mrkdwn import code, escape
from bot.render.people import error_text, mention, recorded_user
from bot.subcommands import (
    ACTION_PREFIX,
    Action,
    Click,
    Context,
    Invocation,
    Registry,
    Subcommand,
    UsageError,
    button,
)
from bot.subcommands.restart import refused_early, restart_button
from config.i18n import gettext as _
from handlers.mutation_lock import AlreadyDone, Busy, once
from handlers.results import Finding, HandlerError, Report

if TYPE_CHECKING:
    from handlers.fix_undo import UndoConflict

FIX = ACTION_PREFIX + "fix-env:fix"
APPLY = ACTION_PREFIX + "fix-env:apply"
CANCEL = ACTION_PREFIX + "fix-env:cancel"
UNDO = ACTION_PREFIX + "fix-env:undo"
USAGE = "fix-env | fix-env undo"
log = logging.getLogger(__name__)
# Blocks and characters kept for the plan's steps (the header, a note, the buttons and the
# context line take the rest of Slack's limits); a longer plan goes into a snippet as well.
MAX_PLAN_BLOCKS = 40
PLAN_TEXT = MAX_MESSAGE_TEXT - 3000


def parse(args: tuple[str, ...]) -> str:
    if not args:
        return "plan"
    if args == ("undo",):
        return "undo"
    raise UsageError(_("unexpected {args}").format(args=code(" ".join(args), 60)))


# --- rendering ---------------------------------------------------------------------------------
def _step_sections(title: str, body: str, limit: int = MAX_SECTION) -> list[dict[str, Any]]:
    head = truncate(title, min(600, limit // 2))
    room = limit - len(head) - 1
    return [section(f"{head}\n{code_block(body, room)}" if body else head)]


def _plan_body(plan: Any, limit: int) -> list[dict[str, Any]]:
    """The plan's steps, each section at most `limit` characters."""
    blocks: list[dict[str, Any]] = []
    number = 0
    if plan.env:
        number += 1
        verb = _("Create `.env` from `.env.example`") if plan.env.base_sha256 is None else _("Edit")
        title = _("*{number}. {verb}* {path} (only the lines shown change)").format(
            number=number, verb=verb, path=code(plan.env_path)
        )
        if "OPENAI_API_BASE" in plan.env.values:
            title += "\n" + _(
                "_OPENAI_API_BASE is legacy on Dify 1.x; set because the usual steps do._"
            )
        blocks += _step_sections(title, plan.env.preview, limit)
    if plan.override:
        number += 1
        verb = _("Create") if plan.override.base_sha256 is None else _("Merge into")
        title = _(
            "*{number}. {verb}* {path}: map host.docker.internal to the host for {services}"
        ).format(
            number=number,
            verb=verb,
            path=code(plan.override.path),
            services=escape(", ".join(plan.override.services)),
        )
        notes = "".join(f"\n_{escape(n)}_" for n in plan.override.notes)
        blocks += _step_sections(title + notes, plan.override.preview, limit)
    if plan.db:
        number += 1
        title = _(
            "*{number}. :warning: Writes Dify's database* ({service}, database {database}): "
            "only the `base_url` of {rows} Ollama row(s), in one transaction, originals saved "
            "to the backup first; then Dify's cached credentials are deleted from Redis."
        ).format(
            number=number,
            service=escape(plan.db.service),
            database=code(plan.db.database),
            rows=len(plan.db.rows),
        )
        blocks += _step_sections(title, plan.db.preview, limit)
    if plan.restart_services:
        blocks.append(
            section(
                _(
                    "*Then* *Restart affected services* recreates {services} "
                    "(db and redis keep running) and re-checks."
                ).format(services=escape(", ".join(plan.restart_services)))
            )
        )
    for item in plan.instructions:
        title = _("*By hand: {title}*").format(title=escape(item.title))
        blocks += _step_sections(title, item.text, min(limit, 2600))
    if plan.unfixed:
        lines = [_("*Not fixed by fix-env:*"), *(f"• {escape(line)}" for line in plan.unfixed)]
        blocks += [section(chunk) for chunk in split_lines(lines, limit)][:3]
    if not plan.has_changes and not plan.instructions:
        blocks.append(section(_("Nothing to fix: no finding that fix-env repairs is failing.")))
    return blocks[:MAX_PLAN_BLOCKS]


def plan_fits(plan: Any) -> bool:
    """Whether the plan's message shows every step whole (else the full plan is attached)."""
    previews = [s.preview for s in (plan.env, plan.override, plan.db) if s is not None]
    body = _plan_body(plan, MAX_SECTION)
    return (
        max(map(len, previews), default=0) <= 2300
        and len(body) < MAX_PLAN_BLOCKS
        and text_size(body) <= PLAN_TEXT
    )


def render_plan(
    plan: Any,
    requested_by: str,
    note: str = "",
    buttons: list[dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The plan as Block Kit: one section per step (previews masked), Apply/Cancel buttons
    (`buttons`: others, e.g. those of a plan made on another host). Within Slack's limits
    whatever the plan: steps share PLAN_TEXT characters, so the buttons and the context line
    always fit."""
    blocks: list[dict[str, Any]] = [
        header(":wrench: " + _("fix-env plan for {project}").format(project=plan.project))
    ]
    if note:
        blocks.append(section(truncate(note, 1500)))
    body = _plan_body(plan, MAX_SECTION)
    if text_size(body) > PLAN_TEXT:
        body = _plan_body(plan, max(400, PLAN_TEXT // max(1, len(body))))
    blocks += body
    if plan.has_changes and plan.state == "planned":
        blocks.append(actions(buttons if buttons is not None else _plan_buttons(plan)))
    blocks.append(
        context(
            _("plan {id} · {folder} · asked by {who}").format(
                id=code(plan.id), folder=escape(plan.dify_dir), who=requested_by
            )
        )
    )
    text = escape(
        _("fix-env plan for {project}").format(project=plan.project) + f": {plan.summary()}"
    )
    return text, blocks


def apply_confirmation(plan: Any) -> str:
    """What Apply's confirmation dialog says the plan changes."""
    writes = ["`.env`"] if plan.env else []
    if plan.override:
        writes.append(_("the compose override"))
    if plan.db:
        writes.append(
            _("*Dify's database* ({rows} row(s)) and its Redis cache").format(
                rows=len(plan.db.rows)
            )
        )
    return _(
        "This changes {what} on the host. A backup is saved first; *Undo* restores it. "
        "Containers are recreated only when you click *Restart* afterwards."
    ).format(what=", ".join(writes))


def _plan_buttons(plan: Any) -> list[dict[str, Any]]:
    body = apply_confirmation(plan)
    return [
        button(
            _("Apply"),
            APPLY,
            {"plan": plan.id},
            style="primary",
            confirm=(_("Apply this fix?"), body, _("Apply")),
        ),
        button(_("Cancel"), CANCEL, {"plan": plan.id}),
    ]


def _applied_blocks(result: Any, user_id: str) -> tuple[str, list[dict[str, Any]]]:
    lines = [f"• {escape(c)}" for c in result.changed]
    lines += [f"• :warning: {escape(w)}" for w in result.warnings]
    text = ":white_check_mark: " + _("fix-env applied by {who}").format(who=mention(user_id))
    services = escape(", ".join(result.restart_services) or _("nothing"))
    return text, [
        section(text + "\n" + "\n".join(lines)),
        section(
            _(
                "The running containers still have the old configuration: *Restart affected "
                "services* recreates {services} (db and redis keep running), then re-checks."
            ).format(services=services)
        ),
        actions(
            [
                restart_button({"backup": result.backup_id}),
                _undo_button(result.backup_id),
            ]
        ),
        context(
            _("backup {id} (private to the bot's user on the host)").format(
                id=code(result.backup_id)
            )
        ),
    ]


def _undo_button(backup_id: str) -> dict[str, Any]:
    return button(
        _("Undo"),
        UNDO,
        {"backup": backup_id},
        style="danger",
        confirm=(
            _("Undo this fix?"),
            _(
                "Restores .env, the compose override and the database rows byte for byte from "
                "the backup (then restart again to apply it)."
            ),
            _("Undo"),
        ),
    )


# --- the subcommand -----------------------------------------------------------------------------
def _post_plan(ctx: Context, channel: str, thread_ts: str | None, user_id: str) -> str:
    from handlers import fix_plan

    progress = ctx.progress(
        ":hourglass_flowing_sand: "
        + _("Checking and planning fix-env… (asked by {who})").format(who=mention(user_id))
    )
    report = ctx.check()
    plan = fix_plan.make_plan(ctx.settings, report)
    text, blocks = render_plan(plan, mention(user_id))
    progress.update(text, blocks)
    if progress.ts is None:
        return "planned"
    if not plan_fits(plan):
        full = plan.render()
        # A preview was cut to fit Slack: the whole plan (masked as shown) as a snippet.
        try:
            ctx.upload_text(channel, thread_ts or progress.ts, "fix-env-plan.txt", full)
        except Exception as exc:  # the message itself already carries the plan
            log.warning("fix-env plan %s: snippet upload failed: %s", plan.id, exc)
    ctx.audit("fix-env:planned", plan=plan.id, summary=plan.summary())
    return "planned"


def run(invocation: Invocation, ctx: Context) -> str:
    if invocation.options == "undo":
        return _offer_undo(ctx, invocation)
    return _post_plan(ctx, invocation.channel_id, invocation.thread_ts, invocation.user_id)


def _offer_undo(ctx: Context, invocation: Invocation) -> str:
    from handlers import backup as backups

    found = backups.latest_undoable(ctx.settings.backup_path)
    if found is None:
        ctx.reply(":information_source: " + _("No fix-env backup to undo on this host."))
        return "nothing"
    text = ":leftwards_arrow_with_hook: " + _(
        "Undo the fix-env applied at {when} by {who}? It restores .env, the compose override "
        "and the database rows from its backup."
    ).format(when=escape(found.created_at), who=recorded_user(found.user))
    ctx.reply(text, [section(text), actions([_undo_button(found.id)])])
    return "confirm-asked"


# --- buttons ----------------------------------------------------------------------------------
def fix_button(finding: Finding, report: Report) -> dict[str, Any] | None:
    """One "Fix" button per report, on its first failing finding fix-env can repair."""
    from handlers.fix_plan import fixable

    first = next((f for f in report.findings if fixable(f)), None)
    if first is None or first.id != finding.id:
        return None
    return button(_("Fix"), FIX, {"f": finding.id}, style="primary")


def on_fix(click: Click, ctx: Context) -> str:
    # One plan per report message, however many times Fix is clicked (a failed attempt, e.g.
    # with the engine down, may be retried).
    key = f"fixplan:{click.channel_id}:{click.message_ts or click.request_id}"
    try:
        with once(ctx.settings.state_path, key, "fix-env plan", click.user_id, "slack"):
            return _post_plan(ctx, click.channel_id, click.thread_ts, click.user_id)
    except AlreadyDone:
        ctx.ephemeral(
            ":information_source: "
            + _("The fix-env plan for this report is already in its thread.")
        )
        return "duplicate"


def on_apply(click: Click, ctx: Context) -> str:
    from handlers import fix_apply, fix_plan

    plan_id = str((click.value or {}).get("plan", ""))
    plan = fix_plan.load_plan(ctx.settings, plan_id)
    if plan.state == "cancelled":
        ctx.ephemeral(":information_source: " + _("This plan was cancelled; run `fix-env` again."))
        return "cancelled"
    if refused_early(ctx, f"apply:{plan.id}"):
        return "duplicate"
    asked = mention(click.user_id)
    message_ts = click.message_ts

    def progress(line: str) -> None:
        # Called by the handler while it changes the host: it must never raise into it.
        if message_ts is not None:
            text = ":hourglass_flowing_sand: " + _("Applying plan {id} (by {who}): {step}").format(
                id=code(plan.id), who=asked, step=escape(line)
            )
            quietly(
                "apply progress",
                lambda: ctx.update(click.channel_id, message_ts, text, [section(text)], True),
            )

    try:
        result = fix_apply.apply_plan(
            ctx.settings, plan.id, user=click.user_id, source="slack", progress=progress
        )
    except (AlreadyDone, Busy) as exc:
        ctx.ephemeral(f":information_source: {error_text(exc)}")
        return "duplicate" if isinstance(exc, AlreadyDone) else "busy"
    except HandlerError as exc:
        ctx.audit("fix-env:failed", plan=plan.id, error=str(exc)[:300])
        if message_ts is not None:
            note = ":x: " + _("Applying failed: {error}").format(error=error_text(exc))
            text, blocks = render_plan(fix_plan.load_plan(ctx.settings, plan.id), asked, note)
            deliver("apply failure", lambda: ctx.update(click.channel_id, message_ts, text, blocks))
        return "failed"
    # The host is changed: from here on Slack only hears about it (retried, never raised).
    ctx.audit(
        "fix-env:applied",
        plan=plan.id,
        backup=result.backup_id,
        changed=len(result.changed),
        db_changed=result.db_changed,
    )
    applied = fix_plan.load_plan(ctx.settings, plan.id)
    if message_ts is not None:
        note = ":white_check_mark: " + _("Applied by {who}.").format(who=asked)
        done, done_blocks = render_plan(applied, asked, note)
        deliver("applied plan", lambda: ctx.update(click.channel_id, message_ts, done, done_blocks))
    text, blocks = _applied_blocks(result, click.user_id)
    deliver("apply result", lambda: ctx.reply(text, blocks))
    return "applied"


def on_cancel(click: Click, ctx: Context) -> str:
    from handlers import fix_plan

    plan = fix_plan.cancel_plan(ctx.settings, str((click.value or {}).get("plan", "")))
    if plan.state != "cancelled":
        ctx.ephemeral(
            ":information_source: "
            + _("Plan {id} is already {state}.").format(id=code(plan.id), state=escape(plan.state))
        )
        return plan.state
    message_ts = click.message_ts
    if message_ts is not None:
        note = ":no_entry_sign: " + _("Cancelled by {who}.").format(who=mention(click.user_id))
        text, blocks = render_plan(plan, mention(click.user_id), note)
        deliver("cancelled plan", lambda: ctx.update(click.channel_id, message_ts, text, blocks))
    return "cancelled"


def on_undo(click: Click, ctx: Context) -> str:
    from handlers import fix_undo

    backup_id = str((click.value or {}).get("backup", ""))
    if refused_early(ctx, f"undo:{backup_id}"):
        return "duplicate"
    head = ":hourglass_flowing_sand: " + _("Undoing (by {who})").format(who=mention(click.user_id))
    live = ctx.progress(f"{head}…")

    def progress(line: str) -> None:
        text = f"{head}: {escape(line)}"
        quietly("undo progress", lambda: live.update(text, [section(text)], transient=True))

    try:
        result = fix_undo.undo(
            ctx.settings, user=click.user_id, source="slack", backup_id=backup_id, progress=progress
        )
    except fix_undo.UndoConflict as exc:
        text, blocks = render_conflict(exc)
        deliver("undo refusal", lambda: live.update(text, blocks))
        return "refused"
    except HandlerError as exc:  # Busy and AlreadyDone included
        text = ":x: " + _("Undo did not run: {error}").format(error=error_text(exc))
        deliver("undo failure", lambda: live.update(text, [section(text)]))
        return "failed"
    ctx.audit("fix-env:undone", backup=result.backup_id)
    lines = "\n".join(f"• {escape(line)}" for line in result.lines())
    text = ":leftwards_arrow_with_hook: " + _("Undone by {who}").format(who=mention(click.user_id))
    blocks = [
        section(f"{text}\n{lines}"),
        section(_("Restart to apply the restored configuration:")),
        actions([restart_button({"backup": result.backup_id, "undo": True})]),
    ]
    deliver("undo result", lambda: live.update(text, blocks))
    return "undone"


def render_conflict(exc: UndoConflict) -> tuple[str, list[dict[str, Any]]]:
    """An undo refused because files changed after the fix: what changed (masked), and the
    command that overrides it, which only someone at the host can run."""
    text = ":no_entry: " + _("Undo refused: {reason}").format(reason=escape(str(exc)))
    command = f"dify-ollama fix-env --undo {exc.backup_id} --force"
    blocks = [section(text)]
    if exc.diff:
        diff = code_block(exc.diff, 2600)
        blocks.append(section(_("Changed since the fix (secrets masked):") + f"\n{diff}"))
    blocks.append(
        section(
            _(
                "To overwrite those changes anyway, run {command} on the host "
                "(the current files are saved first)."
            ).format(command=code(command))
        )
    )
    return text, blocks


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="fix-env",
            usage=USAGE,
            summary=_("Plan the repairs check calls for; apply, restart and undo with buttons"),
            mutating=True,
            run=run,
            parse=parse,
        )
    )
    registry.add_action(Action(FIX, mutating=True, run=on_fix, command="fix-env:fix"))
    registry.add_action(Action(APPLY, mutating=True, run=on_apply, command="fix-env:apply"))
    registry.add_action(Action(CANCEL, mutating=True, run=on_cancel, command="fix-env:cancel"))
    registry.add_action(Action(UNDO, mutating=True, run=on_undo, command="fix-env:undo"))
    registry.add_finding_button(fix_button)
