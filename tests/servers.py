"""Real servers for backend tests: PostgreSQL, Redis and ClickHouse started by `scripts/servers.sh`.

`make test` starts them and exports `COSTLENS_TEST_POSTGRES`, `COSTLENS_TEST_REDIS` and
`COSTLENS_TEST_CLICKHOUSE`. A test that needs one takes a fixture below, which hands it a fresh,
empty database (PostgreSQL, ClickHouse) or an empty Redis db, and skips, saying why, when the server
is not configured or not reachable. Run `scripts/servers.sh start && . .servers/env` to get them
outside `make test`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV = {
    "postgres": "COSTLENS_TEST_POSTGRES",
    "redis": "COSTLENS_TEST_REDIS",
    "clickhouse": "COSTLENS_TEST_CLICKHOUSE",
}


def base_url(kind: str) -> str:
    """The server's URL from the environment, or skip the test with the reason."""
    variable = ENV[kind]
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{kind}: {variable} is not set (make test starts the server; see scripts/servers.sh)")
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            pass
    except OSError as exc:
        pytest.skip(f"{kind}: {variable}={url} is not reachable ({exc})")
    return url


SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "servers.sh"


def pause(kind: str) -> None:
    """Stop one server (its data is kept, except Redis, which runs without persistence)."""
    subprocess.run([str(SCRIPT), "pause", kind], check=True, capture_output=True, timeout=60)


def resume(kind: str) -> None:
    """Start a paused server again on the same port; returns once it answers."""
    subprocess.run([str(SCRIPT), "resume", kind], check=True, capture_output=True, timeout=60)


@contextmanager
def server_down(kind: str) -> Iterator[None]:
    """The server is down inside the block and up again after it, even if the block fails."""
    pause(kind)
    try:
        yield
    finally:
        resume(kind)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = base_url("postgres")
    name = _name("t")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis db, emptied before and after this test."""
    redis = pytest.importorskip("redis")
    url = base_url("redis")
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def clickhouse_url() -> Iterator[str]:
    """A fresh ClickHouse database for this test, dropped afterwards."""
    driver = pytest.importorskip("clickhouse_driver")
    admin = base_url("clickhouse")
    parts = urlsplit(admin)
    client = driver.Client(host=parts.hostname, port=parts.port or 9000)
    name = _name("t")
    client.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(admin, name)
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
        client.disconnect()
