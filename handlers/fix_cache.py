"""Purging Dify's credential cache after its Ollama rows changed (by a fix or its undo).

Dify keeps decrypted credentials in Redis for 24 h, so new base URLs are not seen until the
cache entries go. A failed purge is a warning with the manual command, never an error: the
rows are already right by then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import docker

from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix
from handlers.envfile import parse_env_bytes
from handlers.project import DifyProject
from handlers.results import HandlerError, Progress


def purge_after_rows(
    client: docker.DockerClient,
    settings: Settings,
    project: DifyProject,
    redis_service: str | None,
    redis_db: int,
    env_values: Mapping[str, str],
    progress: Progress,
) -> list[str]:
    """Delete Dify's cached credentials; the warnings to show (empty when it worked).
    `env_values`: `.env` as gathered, used when it cannot be read again now."""
    redis_cid = project.running(redis_service)
    if redis_cid is None:
        return [db_fix.purge_instruction(project.name, redis_db)]
    # The password comes from .env as it is now (the fix may just have written it).
    env = dict(env_values)
    with contextlib.suppress(HandlerError):
        fresh = backups.read_bytes(backups.resolve_target(project.env_path))
        if fresh is not None:
            env = parse_env_bytes(fresh).values
    progress("deleting Dify's cached credentials in Redis")
    try:
        db_fix.purge_cache(
            client,
            redis_cid,
            env.get("REDIS_PASSWORD") or None,
            settings.check_timeout * 2,
            database=redis_db,
            username=env.get("REDIS_USERNAME") or None,
        )
    except HandlerError as exc:
        return [
            f"the database is fixed but Dify's cache was not purged ({exc}). "
            + db_fix.purge_instruction(project.name, redis_db)
        ]
    return []
