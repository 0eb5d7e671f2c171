"""Schema migrations (Alembic), callable from the CLI and the tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, *, connect_timeout: float | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["connect_timeout"] = connect_timeout
    return config


def upgrade(
    database_url: str, revision: str = "head", *, connect_timeout: float | None = None
) -> None:
    command.upgrade(alembic_config(database_url, connect_timeout=connect_timeout), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree."""
    command.check(alembic_config(database_url))


def _scripts() -> ScriptDirectory:
    # The scripts do not depend on the database; any URL reads them.
    return ScriptDirectory.from_config(alembic_config(""))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "no migrations found"
    return head


def revisions_after(revision: str | None) -> list[tuple[str, str]]:
    """``(revision, description)`` of each migration after ``revision`` up to the head,
    oldest first: what an upgrade from there applies."""
    scripts = _scripts().iterate_revisions("head", revision or "base")
    return [(s.revision, (s.doc or "").strip()) for s in reversed(list(scripts))]


async def _current_revision(database_url: str, connect_timeout: float | None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from .db import create_engine

    engine = create_engine(database_url, connect_timeout=connect_timeout)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )
    finally:
        await engine.dispose()


def current_revision(database_url: str, *, connect_timeout: float | None = None) -> str | None:
    """The database's migration, None before the first; connecting may raise."""
    return asyncio.run(_current_revision(database_url, connect_timeout))


def is_current(database_url: str) -> bool:
    """True when the database is at the newest migration."""
    return current_revision(database_url) == head_revision()
