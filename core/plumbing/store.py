"""Metadata in SQLite: WAL, one transaction per change, a versioned schema.

Uniqueness lives in the schema: a container name, an IP address in a
network, a host port per protocol and address are PRIMARY KEY or UNIQUE
constraints, so two berth processes at once can never hand out the same
one -- the second INSERT fails, the loser gets Docker's conflict message.
Changes that read then write take `transaction()` (BEGIN IMMEDIATE), which
serializes writers across processes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from berth.core.errors import Corrupt

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any

# Each entry moves the schema one version up; never edit a released entry.
MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,            -- sha256:<hex of the config>
        manifest TEXT NOT NULL,         -- JSON: the image's manifest (layers: digest, size, mediaType)
        diff_ids TEXT NOT NULL,         -- JSON list, bottom first
        created TEXT NOT NULL,          -- from the config
        size INTEGER NOT NULL,          -- uncompressed bytes of all layers
        parent TEXT,                    -- the image this one was committed from
        stored TEXT NOT NULL            -- when it entered this store
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,          -- docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        name TEXT NOT NULL,             -- docker.io/library/busybox@sha256:...
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (name)
    );
    CREATE TABLE layers (
        driver TEXT NOT NULL,
        chain_id TEXT NOT NULL,         -- OCI chain ID: names the whole stack up to this layer
        cache_id TEXT NOT NULL UNIQUE,  -- the storage driver's name for it (random, as Docker's)
        diff_id TEXT NOT NULL,
        parent TEXT,                    -- chain id of the layer below; NULL for a base layer
        size INTEGER NOT NULL,
        PRIMARY KEY (driver, chain_id)
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image TEXT NOT NULL,            -- what the user typed
        created TEXT NOT NULL,
        driver TEXT NOT NULL,           -- storage driver of its writable layer
        config TEXT NOT NULL,           -- JSON: inspect's Config
        host_config TEXT NOT NULL,      -- JSON: inspect's HostConfig
        state TEXT NOT NULL,            -- JSON: inspect's State + bookkeeping
        network TEXT NOT NULL DEFAULT '{}',  -- JSON: inspect's NetworkSettings
        mounts TEXT NOT NULL DEFAULT '[]'    -- JSON: inspect's Mounts
    );
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        labels TEXT NOT NULL DEFAULT '{}',
        anonymous INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL
    );
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,
        subnet TEXT,
        gateway TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        labels TEXT NOT NULL DEFAULT '{}',
        created TEXT NOT NULL
    );
    CREATE TABLE ip_allocations (
        network_id TEXT NOT NULL,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        PRIMARY KEY (network_id, address)
    );
    CREATE TABLE port_allocations (
        proto TEXT NOT NULL,
        host_port INTEGER NOT NULL,
        host_ip TEXT NOT NULL,          -- '' for all addresses
        container_id TEXT NOT NULL,
        PRIMARY KEY (proto, host_port, host_ip)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


def damaged_message(path, exc: Exception) -> str:
    """One line for a database SQLite cannot use (damaged, not a database, unreadable)."""
    return (f"berth's database {path} cannot be used: {exc} (restore it from a backup, or move it aside "
            "to start an empty installation)")


class _Connection(sqlite3.Connection):
    """A connection whose statements turn a damaged database into Corrupt (one line, the
    command's exit code); constraint errors and locks pass through as they are."""

    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise Corrupt(damaged_message(OPENED[-1] if OPENED else "berth.db", exc)) from None
            raise


def _damaged(exc: Exception) -> bool:
    text = str(exc)
    return type(exc) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text


OPENED: list[Path] = []  # the stores this process opened (for the CLI's error line)


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        OPENED.append(self.path)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False,
                                  factory=_Connection)
        self.db.row_factory = sqlite3.Row
        self._depth = 0
        try:
            self.db.execute("PRAGMA busy_timeout = 60000")
            self.db.execute("PRAGMA foreign_keys = ON")
            if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except Corrupt:
            self.db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise Corrupt(damaged_message(self.path, exc)) from None

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change; nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def all(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        self.db.close()


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line.split("--", 1)[0] + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
