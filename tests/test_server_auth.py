"""API keys: `costlens keys create|list|revoke`, hashed at rest; 401/403 on every route family when keys
are required (a non-loopback bind); loopback open by default; a key's budget in force in the process
budget engine; and no raw key (nor an upstream key) in the logs, the keys db, the call store or the spool.
Real app and real uvicorn; the fake provider is the gateway's upstream."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from costlens.cli import app as cli_app  # noqa: E402
from costlens.testing import FakeProvider  # noqa: E402

KEY = re.compile(r"^clk_[A-Za-z0-9_\-]{32}$")
UPSTREAM_SECRET = "sk-upstream-secret-0123456789abcdef"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hi"}],
}


def keys(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli_app, ["keys", *args])
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def make_key(db: Path, name: str, *scopes: str, budget: str | None = None) -> tuple[str, str]:
    """(the key, its id) via the CLI."""
    extra = ["--budget-usd", budget, "--window", "day"] if budget else []
    out = keys("create", "--name", name, "--scope", ",".join(scopes), "--db", str(db), *extra)
    key = out.stdout.strip()
    assert KEY.match(key), out.stdout
    listed = json.loads(keys("list", "--db", str(db), "--format", "json").stdout)
    return key, next(row["id"] for row in listed if row["prefix"] == key[:8])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "budgets.toml").write_text("", encoding="utf-8")
    return tmp_path


def app_for(home: Path, host: str = "0.0.0.0", **extra: Any) -> Any:
    from costlens.server import ServerConfig, create_app

    config = ServerConfig(
        host=host, store=f"sqlite://{home / 'calls.db'}", ledger=f"sqlite://{home / 'budgets.db'}",
        budgets=home / "budgets.toml", keys_db=home / "keys.db", **extra,
    )  # fmt: skip
    return create_app(config)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    import costlens
    from costlens.config import reset_budgets

    reset_budgets()
    costlens.configure(store="memory://", durability="sync")


# -- the CLI and the database ----------------------------------------------------------------------------


def test_keys_create_list_revoke_and_hashed_at_rest(home: Path) -> None:
    db = home / "keys.db"
    created = keys("create", "--name", "ci-bot", "--scope", "read", "--db", str(db))
    key = created.stdout.strip()
    assert KEY.match(key) and created.stdout == key + "\n"  # stdout: the key alone, once
    assert "not shown again" in created.stderr
    rows = json.loads(keys("list", "--db", str(db), "--format", "json").stdout)
    assert len(rows) == 1 and rows[0]["name"] == "ci-bot" and rows[0]["scopes"] == ["read"]
    assert rows[0]["prefix"] == key[:8] and rows[0]["revoked"] is None
    for fmt in ("table", "json", "csv"):
        assert key not in keys("list", "--db", str(db), "--format", fmt).stdout
    raw = db.read_bytes()
    assert key.encode() not in raw and key[8:].encode() not in raw
    assert hashlib.sha256(key.encode()).hexdigest().encode() in raw
    keys("revoke", rows[0]["id"], "--db", str(db))
    assert json.loads(keys("list", "--db", str(db), "--format", "json").stdout)[0]["revoked"]
    assert "no API key" in keys("revoke", "key_nope", "--db", str(db), code=1).stderr
    assert "unknown scope" in keys("create", "--name", "x", "--scope", "root", "--db", str(db), code=2).stderr
    bad = keys("create", "--name", "x", "--scope", "read", "--budget-usd", "-3", "--db", str(db), code=2)
    assert "positive" in bad.stderr


# -- who may call what -----------------------------------------------------------------------------------

#: (method, path, body, the scope it needs, the error shape)
ROUTES = [
    ("POST", "/v1/chat/completions", CHAT, "gateway", "openai"),
    ("POST", "/v1/messages", MESSAGES, "gateway", "anthropic"),
    ("POST", "/v1/traces", {}, "gateway", "openai"),
    ("GET", "/api/reports/spend", None, "read", "detail"),
    ("GET", "/api/openapi.json", None, "read", "detail"),
    ("PUT", "/api/budgets/from-api", {"limit_usd": "3"}, "admin", "detail"),
    ("GET", "/", None, "read", "detail"),
    ("GET", "/static/dashboard.css", None, "read", "detail"),
]


def _shape(body: Any, shape: str) -> None:
    if shape == "openai":
        assert set(body["error"]) >= {"message", "type", "code"}, body
    elif shape == "anthropic":
        assert body["type"] == "error" and body["error"]["message"], body
    else:
        assert isinstance(body["detail"], str), body


@pytest.fixture
def guarded(home: Path, fake: FakeProvider) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    db = home / "keys.db"
    made = {scope: make_key(db, scope, scope)[0] for scope in ("read", "gateway", "admin")}
    upstreams = {"openai": fake.openai_base_url, "anthropic": fake.base_url}
    with TestClient(app_for(home, upstreams=upstreams)) as client:
        yield client, made, db


@pytest.mark.parametrize(("method", "path", "body", "needed", "shape"), ROUTES)
def test_every_route_family_needs_a_key_with_its_scope(
    guarded: tuple[TestClient, dict[str, str], Path],
    method: str,
    path: str,
    body: Any,
    needed: str,
    shape: str,
) -> None:
    client, made, _ = guarded

    def call(headers: dict[str, str]) -> httpx.Response:
        return client.request(method, path, json=body, headers=headers)

    missing = call({})
    assert missing.status_code == 401, missing.text
    _shape(missing.json(), shape)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = call({"Authorization": "Bearer clk_" + "x" * 32})
    assert unknown.status_code == 401 and "invalid" in unknown.text
    for scope, key in made.items():
        response = call({"Authorization": f"Bearer {key}"})
        if scope == needed or scope == "admin":
            assert response.status_code not in (401, 403), (scope, response.text)
        else:
            assert response.status_code == 403, (scope, response.text)
            _shape(response.json(), shape)
            assert needed in response.text
    if needed == "gateway":  # the Anthropic SDK's header
        assert call({"x-api-key": made["gateway"]}).status_code not in (401, 403)


def test_revoked_key_is_refused_and_dashboard_cookie_login(
    guarded: tuple[TestClient, dict[str, str], Path],
) -> None:
    client, made, db = guarded
    read = made["read"]
    assert client.get("/login", params={"key": "clk_" + "y" * 32}, follow_redirects=False).status_code == 401
    login = client.get("/login", params={"key": read}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert "HttpOnly" in login.headers["set-cookie"]
    assert client.get("/").status_code == 200  # the cookie
    assert client.get("/api/calls").status_code == 401  # the API takes no cookie
    client.cookies.clear()
    listed = json.loads(keys("list", "--db", str(db), "--format", "json").stdout)
    keys("revoke", next(r["id"] for r in listed if r["prefix"] == read[:8]), "--db", str(db))
    refused = client.get("/api/calls", headers={"Authorization": f"Bearer {read}"})
    assert refused.status_code == 401 and "revoked" in refused.text


def test_require_keys_on_loopback_and_open_loopback_by_default(home: Path) -> None:
    read, _ = make_key(home / "keys.db", "reader", "read")
    with TestClient(app_for(home, host="127.0.0.1", require_keys=True)) as client:
        assert client.get("/api/calls").status_code == 401
    with TestClient(app_for(home, host="127.0.0.1")) as client:
        assert client.get("/api/calls").status_code == 200
        assert client.get("/").status_code == 200
        # a costlens key that is given is still checked
        assert (
            client.get("/api/calls", headers={"Authorization": "Bearer clk_" + "z" * 32}).status_code == 401
        )
        assert (
            client.put(
                "/api/budgets/x", json={"limit_usd": "1"}, headers={"Authorization": f"Bearer {read}"}
            ).status_code
            == 403
        )
        # a token that is not a costlens key (an upstream key) is left for the gateway
        assert client.get("/api/calls", headers={"Authorization": "Bearer sk-whatever"}).status_code == 200


def test_gateway_calls_are_tagged_with_the_key_and_its_budget_is_in_force(
    home: Path, fake: FakeProvider
) -> None:
    from costlens.config import get_engine

    db = home / "keys.db"
    before, before_id = make_key(db, "early", "gateway", budget="0.000001")
    upstreams = {"openai": fake.openai_base_url, "anthropic": fake.base_url}
    with TestClient(app_for(home, upstreams=upstreams)) as client:
        engine = get_engine()
        assert engine is not None
        early = engine.get(f"api-key-{before_id}")  # in force from the server's start
        assert early is not None and early.scope.as_dict() == {"api_key": before_id}
        assert str(early.limit_usd) in ("0.000001", "1E-6") and early.mode == "block"
        later, later_id = make_key(db, "later", "gateway", budget="5")
        ok = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {later}"})
        assert ok.status_code == 200, ok.text
        late = get_engine().get(f"api-key-{later_id}")  # type: ignore[union-attr]
        assert late is not None and late.scope.as_dict() == {"api_key": later_id}
        refused = client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {before}"}
        )
        assert refused.status_code in (402, 429), refused.text  # over the key's own budget
        import costlens

        costlens.flush()
        calls = client.get("/api/calls", headers={"Authorization": f"Bearer {make_key(db, 'r', 'read')[0]}"})
        tagged = [c for c in calls.json()["calls"] if c["tags"].get("api_key") == later_id]
        assert tagged, calls.json()


# -- secrets ---------------------------------------------------------------------------------------------


@contextmanager
def serving(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_config=None, log_level="debug", access_log=True, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_no_secret_in_logs_keys_db_store_or_spool(
    home: Path, fake: FakeProvider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import costlens
    from costlens._paths import spool_dir

    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", UPSTREAM_SECRET + "-anthropic")
    db = home / "keys.db"
    gateway, _ = make_key(db, "gw", "gateway", budget="100")
    read, _ = make_key(db, "reader", "read")
    admin, _ = make_key(db, "boss", "admin")
    upstreams = {"openai": fake.openai_base_url, "anthropic": fake.base_url}
    caplog.set_level(logging.DEBUG)
    with (
        serving(app_for(home, upstreams=upstreams)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert (
            client.post(
                "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {gateway}"}
            ).status_code
            == 200
        )
        assert client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": gateway}).status_code == 200
        assert client.get("/api/calls", headers={"Authorization": f"Bearer {read}"}).status_code == 200
        assert client.get("/api/calls", headers={"Authorization": f"Bearer {gateway}"}).status_code == 403
        assert (
            client.put(
                "/api/budgets/x", json={"limit_usd": "1"}, headers={"Authorization": f"Bearer {admin}"}
            ).status_code
            == 200
        )
        assert client.get("/login", params={"key": read}).status_code == 303  # to the dashboard
        wrong = read[:-1] + ("Q" if read[-1] != "Q" else "R")  # (a key may end in Q: 1 in 64)
        assert client.get("/login", params={"key": wrong}).status_code == 401
        assert (
            client.get("/api/calls", headers={"Authorization": "Bearer clk_" + "w" * 32}).status_code == 401
        )
        costlens.flush()
    secrets = [gateway, read, admin, wrong, UPSTREAM_SECRET]
    # the server's records (uvicorn's thread: its access log, the app, the gateway's upstream client);
    # this thread's are the test's own HTTP client, which does see the cookie it is sent
    mine = threading.get_ident()
    server_side = [r for r in caplog.records if r.thread != mine]
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server_side)
    assert "GET /login?key=[redacted]" in logs and "/api/calls" in logs, "uvicorn's access log was captured"
    places = {"logs": logs.encode()}
    for path in [db, home / "calls.db", *home.glob("calls.db*"), *home.glob("*.db*")]:
        if path.is_file():
            places[str(path)] = path.read_bytes()
    spool = spool_dir()
    for path in spool.rglob("*") if spool.is_dir() else []:
        if path.is_file():
            places[str(path)] = path.read_bytes()
    for secret in secrets:
        for where, data in places.items():
            at = data.find(secret.encode())
            assert at < 0, (secret[:8], where, data[max(0, at - 300) : at + 60])
            assert secret[8:].encode() not in data, (secret[:8], where)
