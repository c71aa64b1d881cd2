"""The fix-env plan as data: its steps (`.env`, compose override, database rows), the manual
instructions, what it leaves unfixed, and its text rendering. Made by `handlers/fix_decide.py`,
stored by `handlers/fix_plan.py`, applied by `handlers/fix_apply.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from handlers import db_fix
from handlers.override import GATEWAY_NAME

LEGACY_NOTE = (
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
        out = [f"fix-env plan {self.id} for Dify project {self.project} in {self.dify_dir}"]
        number = 0
        if self.env:
            number += 1
            if self.env.base_sha256 is None:
                out.append(
                    f"{number}. Create {self.env_path} as a copy of {self.env.template}, with:"
                )
            else:
                out.append(f"{number}. Edit {self.env_path} (only the lines shown change):")
            out.append(_indent(self.env.preview))
            if "OPENAI_API_BASE" in self.env.values:
                out.append(_indent(LEGACY_NOTE))
        if self.override:
            number += 1
            verb = "Create" if self.override.base_sha256 is None else "Merge into"
            out.append(
                f"{number}. {verb} {self.override.path}: map {GATEWAY_NAME} to the host "
                f"(host-gateway) for {', '.join(self.override.services)}:"
            )
            out.append(_indent(self.override.preview))
            out.extend(_indent(n) for n in self.override.notes)
        if self.db:
            number += 1
            out.append(
                f"{number}. WRITE DIFY'S DATABASE ({self.db.service}, database {self.db.database}):"
                f" set only the base_url field of {len(self.db.rows)} Ollama row(s), in one "
                "transaction, after saving the original rows to the backup:"
            )
            out.append(_indent(self.db.preview))
            number += 1
            if self.db.redis_service:
                out.append(
                    f"{number}. Delete Dify's cached credentials in Redis "
                    f"({self.db.redis_service}, db {self.db.redis_db}; keys "
                    f"{', '.join(db_fix.CACHE_PATTERNS)}) so Dify reads the new URLs."
                )
            else:
                out.append(
                    f"{number}. Dify's Redis is not a container of this project: "
                    + db_fix.purge_instruction(self.project, self.db.redis_db)
                )
        if self.restart_services:
            out.append(
                "Then restart to apply it: `dify-ollama restart` recreates "
                + ", ".join(self.restart_services)
                + " (db and redis keep running)."
            )
        if self.instructions:
            out.append("By hand (fix-env cannot do these for you):")
            for item in self.instructions:
                out.append(f"- {item.title}:")
                out.append(_indent(item.text))
        if self.unfixed:
            out.append("Not fixed by fix-env (see `dify-ollama check`):")
            out.extend(f"- {line}" for line in self.unfixed)
        if not self.has_changes and not self.instructions:
            out.append("Nothing to fix: no finding that fix-env repairs is failing.")
        return "\n".join(out)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
