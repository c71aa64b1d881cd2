"""The fix-env plan as data: its steps (`.env`, compose override, database rows), the manual
instructions, what it leaves unfixed, and its text rendering. Made by `handlers/fix_decide.py`,
stored by `handlers/fix_plan.py`, applied by `handlers/fix_apply.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from config.i18n import gettext as _
from handlers import db_fix
from handlers.override import GATEWAY_NAME


def legacy_note() -> str:
    return _(
        "OPENAI_API_BASE is a legacy variable on Dify 1.x (the Ollama plugin uses the base URL "
        "stored per model); it is set because people follow the documented steps."
    )


@dataclass
class EnvStep:
    path: str
    base_sha256: str | None  # None: .env does not exist and is created
    template: str | None  # .env.example when creating
    template_sha256: str | None
    values: dict[str, str]  # KEY -> new value (never a secret key)
    preview: str


@dataclass
class OverrideStep:
    path: str
    base_sha256: str | None
    services: list[str]
    preview: str
    notes: list[str] = field(default_factory=list)


@dataclass
class RowPlan:
    table: str
    id: str
    model: str
    model_type: str
    old_url: str
    new_url: str
    config_sha256: str


@dataclass
class DbStep:
    service: str
    user: str
    database: str
    rows: list[RowPlan]
    redis_service: str | None
    redis_db: int
    preview: str


@dataclass
class Instruction:
    finding: str
    title: str
    text: str


@dataclass
class Plan:
    id: str
    created_at: str
    project: str
    dify_dir: str
    env_path: str
    env: EnvStep | None = None
    override: OverrideStep | None = None
    db: DbStep | None = None
    instructions: list[Instruction] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)  # finding ids the plan addresses
    restart_services: list[str] = field(default_factory=list)
    state: str = "planned"  # planned | applied | cancelled

    @property
    def has_changes(self) -> bool:
        return bool(self.env or self.override or self.db)

    @property
    def writes_database(self) -> bool:
        return self.db is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        data = dict(data)
        env = data.pop("env", None)
        ovr = data.pop("override", None)
        db = data.pop("db", None)
        instructions = [Instruction(**i) for i in data.pop("instructions", [])]
        plan = cls(**data, instructions=instructions)
        plan.env = EnvStep(**env) if env else None
        plan.override = OverrideStep(**ovr) if ovr else None
        if db:
            rows = [RowPlan(**r) for r in db.pop("rows", [])]
            plan.db = DbStep(**db, rows=rows)
        return plan

    def summary(self) -> str:
        parts = []
        if self.env:
            parts.append("create .env" if self.env.base_sha256 is None else "edit .env")
        if self.override:
            parts.append("compose override")
        if self.db:
            parts.append(f"rewrite {len(self.db.rows)} database row(s) + purge cache")
        return ", ".join(parts) or "no changes"

    def render(self) -> str:
        """The whole plan as text: what changes (secret values masked), then what is manual."""
        out = [
            _("fix-env plan {id} for Dify project {project} in {folder}").format(
                id=self.id, project=self.project, folder=self.dify_dir
            )
        ]
        number = 0
        if self.env:
            number += 1
            if self.env.base_sha256 is None:
                out.append(
                    _("{number}. Create {path} as a copy of {template}, with:").format(
                        number=number, path=self.env_path, template=self.env.template
                    )
                )
            else:
                out.append(
                    _("{number}. Edit {path} (only the lines shown change):").format(
                        number=number, path=self.env_path
                    )
                )
            out.append(_indent(self.env.preview))
            if "OPENAI_API_BASE" in self.env.values:
                out.append(_indent(legacy_note()))
        if self.override:
            number += 1
            verb = _("Create") if self.override.base_sha256 is None else _("Merge into")
            out.append(
                _(
                    "{number}. {verb} {path}: map {name} to the host (host-gateway) for {services}:"
                ).format(
                    number=number,
                    verb=verb,
                    path=self.override.path,
                    name=GATEWAY_NAME,
                    services=", ".join(self.override.services),
                )
            )
            out.append(_indent(self.override.preview))
            out.extend(_indent(n) for n in self.override.notes)
        if self.db:
            number += 1
            out.append(
                _(
                    "{number}. WRITE DIFY'S DATABASE ({service}, database {database}): set only "
                    "the base_url field of {rows} Ollama row(s), in one transaction, after "
                    "saving the original rows to the backup:"
                ).format(
                    number=number,
                    service=self.db.service,
                    database=self.db.database,
                    rows=len(self.db.rows),
                )
            )
            out.append(_indent(self.db.preview))
            number += 1
            if self.db.redis_service:
                out.append(
                    _(
                        "{number}. Delete Dify's cached credentials in Redis ({service}, db {db}; "
                        "keys {keys}) so Dify reads the new URLs."
                    ).format(
                        number=number,
                        service=self.db.redis_service,
                        db=self.db.redis_db,
                        keys=", ".join(db_fix.CACHE_PATTERNS),
                    )
                )
            else:
                out.append(
                    _("{number}. Dify's Redis is not a container of this project: ").format(
                        number=number
                    )
                    + db_fix.purge_instruction(self.project, self.db.redis_db)
                )
        if self.restart_services:
            out.append(
                _(
                    "Then restart to apply it: `dify-ollama restart` recreates {services} "
                    "(db and redis keep running)."
                ).format(services=", ".join(self.restart_services))
            )
        if self.instructions:
            out.append(_("By hand (fix-env cannot do these for you):"))
            for item in self.instructions:
                out.append(f"- {item.title}:")
                out.append(_indent(item.text))
        if self.unfixed:
            out.append(_("Not fixed by fix-env (see `dify-ollama check`):"))
            out.extend(f"- {line}" for line in self.unfixed)
        if not self.has_changes and not self.instructions:
            out.append(_("Nothing to fix: no finding that fix-env repairs is failing."))
        return "\n".join(out)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
