"""`fix-env`: a plan from the check findings, shown first, applied on confirmation, undoable.

Making a plan is gather -> decide -> save: `handlers/fix_scene.py` reads the files, rows and
containers once, `handlers/fix_decide.py` decides from them without touching the host, and the
plan is saved under `<STATE_DIR>/plans/<id>.json` (private) with the checksums of everything it
read. `handlers/fix_apply.py` applies a saved plan, `handlers/fix_undo.py` undoes an applied one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from config.i18n import gettext as _
from config.settings import Settings
from handlers import backup as backups
from handlers import fix_decide, fix_scene
from handlers.engine import connect
from handlers.fix_model import Plan
from handlers.results import Finding, HandlerError, Report, Status

PLANS_DIR = "plans"


def fixable(finding: Finding) -> bool:
    """Whether a finding gets a "Fix" button: failing and repairable by fix-env."""
    return finding.status is Status.FAIL and finding.fixable


def make_plan(settings: Settings, report: Report) -> Plan:
    """Plan the repairs the report calls for, reading the current files and rows; saved."""
    scene = fix_scene.gather(settings, connect(settings))
    plan = fix_decide.plan(scene, report, settings)
    save_plan(settings, plan)
    return plan


# --- persistence ----------------------------------------------------------------------------
def _plan_path(settings: Settings, plan_id: str) -> Path:
    if not plan_id.isalnum() or len(plan_id) > 32:
        raise HandlerError(_("not a plan id: {id}").format(id=repr(plan_id[:40])))
    return settings.state_path / PLANS_DIR / f"{plan_id}.json"


def save_plan(settings: Settings, plan: Plan) -> None:
    path = _plan_path(settings, plan.id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    backups.atomic_write(
        path,
        json.dumps(plan.to_json(), indent=2).encode(),
        like=backups.Ownership(0o600, os.geteuid(), os.getegid()),
    )


def load_plan(settings: Settings, plan_id: str) -> Plan:
    try:
        data = json.loads(_plan_path(settings, plan_id).read_text())
    except FileNotFoundError:
        raise HandlerError(
            _("plan {id} is unknown on this host (run fix-env again)").format(id=plan_id)
        ) from None
    except (OSError, ValueError) as exc:
        raise HandlerError(
            _("plan {id} cannot be read: {error}").format(id=plan_id, error=exc)
        ) from None
    return Plan.from_json(data)


def cancel_plan(settings: Settings, plan_id: str) -> Plan:
    plan = load_plan(settings, plan_id)
    if plan.state == "planned":
        plan.state = "cancelled"
        save_plan(settings, plan)
    return plan
