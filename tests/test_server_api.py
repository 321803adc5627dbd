"""The REST API against a seeded SQLite store: every endpoint's numbers equal the CLI's `--format json`
for the same store, files and runs; paging, filters and 422s; and schemathesis finds no server error
on any endpoint of the live app's OpenAPI schema. No mocks: the real app through FastAPI's TestClient."""

from __future__ import annotations

import json
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from costlens.cli import app as cli_app  # noqa: E402
from costlens.usage import CallRecord  # noqa: E402
from tests.conftest import write_demo_eval_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "examples" / "roi" / "published_a.toml"
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "mystery-model")
FEATURES = ("chat", "search", "summarize")


@dataclass
class Site:
    client: TestClient
    app: Any
    store_url: str
    budgets: Path
    ledger_url: str
    runs: Path
    records: list[CallRecord]


def _records(now: datetime) -> list[CallRecord]:
    out = []
    for i in range(150):
        model = MODELS[i % len(MODELS)]
        routed = i % 5 == 1
        priced = model != "mystery-model"
        out.append(
            CallRecord(
                provider="anthropic" if model.startswith("claude") else "openai",
                operation="chat",
                request_model="gpt-4o" if routed else model,
                response_model="gpt-4o-mini" if routed else model,
                started_at=now - timedelta(days=i % 20, hours=1 + (i * 7) % 19, minutes=i % 50),
                latency_ms=100.0 + i,
                input_tokens=1000 + 13 * i,
                output_tokens=200 + 7 * i,
                cost_nanousd=1_234_567 * (i + 1) if priced else None,
                price_known=priced,
                status="error" if i % 17 == 3 else "ok",
                tags={"feature": FEATURES[i % len(FEATURES)], **({"user": "alice"} if i % 2 else {})},
                route={
                    "policy": "router:cheapest",
                    "from": "gpt-4o",
                    "to": "gpt-4o-mini",
                    "reason": "cheapest candidate above the bar",
                }
                if routed
                else None,
                id=f"call-{i:04d}",
            )
        )
    # hourly baseline and a spike one hour ago: an anomaly for `anomalies`
    for h in range(2, 60):
        out.append(
            CallRecord(
                "openai",
                "chat",
                "gpt-4.1-nano",
                started_at=now - timedelta(hours=h, minutes=30),
                input_tokens=100,
                output_tokens=10,
                cost_nanousd=1_000 + h % 3,
                price_known=True,
                tags={"feature": "batch"},
                id=f"hour-{h:03d}",
            )
        )
    out.append(
        CallRecord(
            "openai",
            "chat",
            "gpt-4.1-nano",
            started_at=now - timedelta(minutes=50),
            input_tokens=90_000,
            output_tokens=9_000,
            cost_nanousd=9_000_000,
            price_known=True,
            tags={"feature": "batch"},
            id="spike",
        )
    )
    # several calls in the same microsecond: the cursor must page through them by id
    same = now - timedelta(days=3, minutes=7)
    out += [
        CallRecord(
            "openai", "chat", "gpt-4o", started_at=same, cost_nanousd=5, price_known=True, id=f"same-{k}"
        )
        for k in range(9)
    ]
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from costlens.server import ServerConfig, create_app
    from costlens.store.sqlite import SQLiteStore

    home = tmp_path_factory.mktemp("api-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COSTLENS_HOME", str(home))
        mp.delenv("COSTLENS_STORE", raising=False)
        now = datetime.now(UTC)
        records = _records(now)
        store = SQLiteStore(home / "calls.db")
        store.append(records)
        store.close()
        budgets = home / "budgets.toml"
        budgets.write_text(
            '[[budgets]]\nname = "monthly"\nlimit_usd = "50"\nwindow = "month"\n\n'
            '[[budgets]]\nname = "chat-daily"\nlimit_usd = "2"\nwindow = "day"\n'
            'scope = { feature = "chat" }\n',
            encoding="utf-8",
        )
        runs = home / "runs"
        write_demo_eval_run(runs)
        url, ledger = f"sqlite://{home / 'calls.db'}", f"sqlite://{home / 'budgets.db'}"
        config = ServerConfig(store=url, ledger=ledger, budgets=budgets, keys_db=home / "keys.db")
        app = create_app(config)
        app.state.ctx.extras["runs_dir"] = runs
        with TestClient(app) as client:
            yield Site(client, app, url, budgets, ledger, runs, records)
        import costlens
        from costlens.config import reset_budgets

        reset_budgets()
        costlens.configure(store="memory://")


def cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def get(site: Site, path: str, expect: int = 200, **params: Any) -> Any:
    response = site.client.get(path, params=params)
    assert response.status_code == expect, (path, params, response.text)
    return response.json()


# -- reports --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "flags"),
    [
        ({}, []),
        ({"by": "feature"}, ["--by", "feature"]),
        ({"by": ["model", "feature"], "since": "10d"}, ["--by", "model,feature", "--since", "10d"]),
        (
            {"by": "provider", "bucket": "day", "timezone": "Europe/Berlin", "since": "2020-01-01"},
            ["--by", "provider", "--bucket", "day", "--tz", "Europe/Berlin", "--since", "2020-01-01"],
        ),
        ({"where": ["feature=chat", "user=alice"]}, ["--where", "feature=chat", "--where", "user=alice"]),
        ({"measures": "all", "top": 2}, ["--measures", "all", "--top", "2"]),
        ({"since": "7d", "compare": "previous"}, ["--since", "7d", "--compare", "previous"]),
    ],
)
def test_report_matches_the_cli(site: Site, params: dict[str, Any], flags: list[str]) -> None:
    api = get(site, "/api/reports/spend", **params)
    rows = cli("report", "--store", site.store_url, "--format", "json", *flags)
    assert api["rows"] == rows
    assert rows, "the seeded store has calls in every window asked"
    assert list(api["rows"][0]) == api["columns"]


def test_report_money_is_exact_text_and_unknown_money_is_null(site: Site) -> None:
    rows = {row["model"]: row for row in get(site, "/api/reports/spend")["rows"]}
    assert rows["mystery-model"]["cost_usd"] is None
    expected = sum(
        r.cost_nanousd or 0 for r in site.records if (r.response_model or r.request_model) == "gpt-4o"
    )
    assert rows["gpt-4o"]["cost_usd"] == format(Decimal(expected).scaleb(-9), "f")
    totals = get(site, "/api/reports/spend")["totals"]
    assert totals["calls"] == len(site.records)
    assert Decimal(totals["cost_usd"]) == Decimal(sum(r.cost_nanousd or 0 for r in site.records)).scaleb(-9)


def test_forecast_matches_the_cli(site: Site) -> None:
    api = get(site, "/api/forecasts", by="feature")
    rows = cli("forecast", "--by", "feature", "--store", site.store_url, "--format", "json")
    assert [f["scope"]["feature"] for f in api] == [r["feature"] for r in rows]
    for mine, theirs in zip(api, rows, strict=True):
        for field in ("spent_usd", "history_days", "method", "window_end", "daily_rate_usd"):
            assert str(mine[field]).replace("Z", "+00:00") == str(theirs[field]), field


def test_anomalies_match_the_cli(site: Site) -> None:
    api = get(site, "/api/anomalies", by="feature")
    rows = cli("anomalies", "--by", "feature", "--store", site.store_url, "--format", "json")
    assert api, "the seeded spike is found"
    assert [(a["scope"]["feature"], a["metric"], a["value"], a["cost_usd"]) for a in api] == [
        (r["feature"], r["metric"], r["value"], r["cost_usd"]) for r in rows
    ]
    assert "spike" in api[0]["top_call_ids"]


# -- calls and routing ----------------------------------------------------------------------------------


def _order(records: list[CallRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=lambda r: (r.started_at, r.id), reverse=True)]


def _walk(site: Site, path: str, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        page = get(site, path, **params, **({"cursor": cursor} if cursor else {}))
        seen += page["calls"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging never ended")


def test_calls_page_through_every_call_newest_first(site: Site) -> None:
    calls = _walk(site, "/api/calls", limit=7)
    assert [c["id"] for c in calls] == _order(site.records)
    tail = cli("calls", "tail", "-n", "10000", "--store", site.store_url, "--format", "json")
    by_id = {c["id"]: c for c in calls}
    for row in tail:
        assert by_id[row["id"]]["cost_usd"] == row["cost_usd"]
        assert by_id[row["id"]]["model"] == row["model"]


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"model": "gpt-4o"}, lambda r: (r.response_model or r.request_model) == "gpt-4o"),
        ({"provider": "anthropic"}, lambda r: r.provider == "anthropic"),
        ({"status": "error"}, lambda r: r.status == "error"),
        (
            {"tag": ["feature=chat", "user=alice"]},
            lambda r: r.tags.get("feature") == "chat" and "user" in r.tags,
        ),
        ({"since": "2d"}, lambda r: r.started_at >= datetime.now(UTC) - timedelta(days=2, minutes=5)),
    ],
)
def test_calls_filters(site: Site, params: dict[str, Any], keep: Any) -> None:
    calls = _walk(site, "/api/calls", limit=13, **params)
    expected = _order([r for r in site.records if keep(r)])
    assert expected and [c["id"] for c in calls] == expected


def test_routing_decisions_are_the_routed_calls(site: Site) -> None:
    calls = _walk(site, "/api/routing/decisions", limit=4)
    assert [c["id"] for c in calls] == _order([r for r in site.records if r.route])
    route = calls[0]["route"]
    assert route["policy"] == "router:cheapest" and route["requested"] == "gpt-4o"
    assert route["chosen"] == "gpt-4o-mini" and route["raw"]["reason"]
    assert get(site, "/api/routing/decisions", policy="other")["calls"] == []
    plain = get(site, "/api/calls", model="mystery-model", limit=1)["calls"][0]
    assert plain["route"] is None and plain["cost_usd"] is None


# -- prices ---------------------------------------------------------------------------------------------


def test_prices_match_the_cli(site: Site) -> None:
    assert get(site, "/api/prices/gpt-4o-mini") == cli("prices", "show", "gpt-4o-mini", "--format", "json")
    missing = cli("prices", "missing", "--store", site.store_url, "--format", "json")
    unpriced = get(site, "/api/prices/unpriced")
    assert [_times(row) for row in unpriced] == [_times(row) for row in missing]
    assert "mystery-model" in {m["model"] for m in unpriced}
    assert "no price known" in get(site, "/api/prices/no-such-model-x", 404)["detail"]


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v) if k.endswith("_seen") else v for k, v in row.items()}


# -- budgets --------------------------------------------------------------------------------------------


def test_budgets_match_the_cli(site: Site) -> None:
    listed = get(site, "/api/budgets")
    rows = cli(
        "budgets", "list", "--file", str(site.budgets), "--ledger", site.ledger_url, "--format", "json"
    )
    assert [b["name"] for b in listed] == [r["name"] for r in rows]
    assert [b["limit_usd"] for b in listed] == [r["limit_usd"] for r in rows]
    status = get(site, "/api/budgets/status")
    expected = cli(
        "budgets", "status", "--file", str(site.budgets), "--ledger", site.ledger_url, "--format", "json"
    )
    keep = ("budget", "key", "limit_usd", "spent_usd", "reserved_usd", "remaining_usd", "projected_usd")
    assert [{k: s[k] for k in keep} for s in status] == [{k: r[k] for k in keep} for r in expected]
    assert {"thresholds_crossed", "window_start"} <= set(status[0])
    assert get(site, "/api/budgets/status", name="monthly")[0]["budget"] == "monthly"
    assert "no budget named" in get(site, "/api/budgets/status", 404, name="nope")["detail"]


def test_budgets_set_and_remove(site: Site) -> None:
    made = site.client.put("/api/budgets/api-made", json={"limit_usd": "7.25", "window": "week"})
    assert made.status_code == 200, made.text
    assert made.json()["limit_usd"] == "7.25"
    data = tomllib.loads(site.budgets.read_text(encoding="utf-8"))
    assert {"name": "api-made", "limit_usd": "7.25"}.items() <= data["budgets"][-1].items()
    changed = site.client.put("/api/budgets/api-made", json={"mode": "warn"}).json()
    assert changed["mode"] == "warn" and changed["limit_usd"] == "7.25"
    rows = cli(
        "budgets", "list", "--file", str(site.budgets), "--ledger", site.ledger_url, "--format", "json"
    )
    assert "api-made" in [r["name"] for r in rows]
    from costlens.config import get_engine

    engine = get_engine()
    assert engine is not None and engine.get("api-made") is not None  # in force in the server process
    bad = site.client.put("/api/budgets/new-one", json={"window": "day"})
    assert bad.status_code == 422 and "limit_usd" in bad.text
    bad = site.client.put("/api/budgets/api-made", json={"mode": "explode"})
    assert bad.status_code == 422, bad.text
    gone = site.client.delete("/api/budgets/api-made")
    assert gone.status_code == 200 and gone.json() == {"removed": "api-made", "defined_in": "file"}
    assert site.client.delete("/api/budgets/api-made").status_code == 404
    assert "api-made" not in site.budgets.read_text(encoding="utf-8")


# -- roi and evals --------------------------------------------------------------------------------------


def test_roi_plan_matches_the_cli(site: Site) -> None:
    from costlens.roi._load import read_data

    body = json.loads(json.dumps(read_data(SCENARIO), default=str))
    response = site.client.post("/api/roi/plan", json=body)
    assert response.status_code == 200, response.text
    mine = response.json()
    theirs = cli("roi", "plan", str(SCENARIO), "--format", "json")
    assert mine["recommendation"] == theirs["recommendation"]
    for key in ("paths", "ranking", "comparisons", "months", "horizon_months", "baseline"):
        assert mine[key] == theirs[key], key
    assert mine["recommendation"]["verdict"] == "fine_tune"
    broken = site.client.post("/api/roi/plan", json={**body, "horizon_months": 0})
    assert broken.status_code == 422 and "horizon_months" in broken.text


def test_evals_match_the_cli(site: Site) -> None:
    assert get(site, "/api/evals") == cli("eval", "list", "--runs-dir", str(site.runs), "--format", "json")
    report = cli("eval", "report", str(site.runs / "demo-run"), "--format", "json")
    assert get(site, "/api/evals/demo-run") == report
    assert get(site, "/api/evals/demo") == report  # a unique prefix
    get(site, "/api/evals/nothing-here", 404)
    get(site, "/api/evals/..%2F..%2Fetc", 404)


# -- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "word"),
    [
        ("/api/reports/spend", {"by": "modle"}, "did you mean 'model'"),
        ("/api/reports/spend", {"by": "bad key!"}, "bad group/filter key"),
        ("/api/reports/spend", {"where": "feature"}, "key=value"),
        ("/api/reports/spend", {"since": "yesterday"}, "cannot read"),
        ("/api/reports/spend", {"since": "99999999999d"}, "out of range"),
        ("/api/reports/spend", {"since": "1d", "until": "2d"}, "not before"),
        ("/api/reports/spend", {"timezone": "Mars/Olympus"}, "time zone"),
        ("/api/reports/spend", {"measures": "calls,bogus"}, "unknown measure"),
        ("/api/reports/spend", {"bucket": "year"}, "pattern"),
        ("/api/reports/spend", {"top": "0"}, "greater than"),
        ("/api/reports/spend", {"compare": "previous"}, "needs since"),
        ("/api/reports/spend", {"by": "calls"}, "collides"),
        ("/api/forecasts", {"level": "2"}, "less than"),
        ("/api/forecasts", {"until": "2001-01-01"}, "future"),
        ("/api/anomalies", {"metric": "vibes"}, "unknown metric"),
        ("/api/calls", {"limit": "0"}, "greater than"),
        ("/api/calls", {"limit": "many"}, "integer"),
        ("/api/calls", {"cursor": "nonsense"}, "cursor"),
        ("/api/calls", {"status": "weird"}, "pattern"),
        ("/api/calls", {"tag": "=x"}, "name=value"),
        ("/api/prices/gpt-4o", {"at": "soon"}, "cannot read"),
    ],
)
def test_bad_parameters_are_422_with_a_clear_message(
    site: Site, path: str, params: dict[str, str], word: str
) -> None:
    response = site.client.get(path, params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][0] == "query"
    assert word in detail[0]["msg"], detail


def test_openapi_documents_money_as_strings(site: Site) -> None:
    schema = get(site, "/api/openapi.json")
    assert set(schema["paths"]) >= {
        "/api/reports/spend", "/api/forecasts", "/api/anomalies", "/api/budgets", "/api/budgets/status",
        "/api/budgets/{name}", "/api/calls", "/api/routing/decisions", "/api/prices/{model}",
        "/api/prices/unpriced", "/api/roi/plan", "/api/evals", "/api/evals/{run}",
    }  # fmt: skip
    call = schema["components"]["schemas"]["CallOut"]["properties"]
    assert {"type": "string"} in call["cost_usd"]["anyOf"]
    assert schema["components"]["schemas"]["ForecastOut"]["properties"]["forecast_usd"]["type"] == "string"


# -- schemathesis ---------------------------------------------------------------------------------------


def _schema_app() -> Any:
    """An app for schemathesis, built at import (schemathesis loads the schema then) without touching the
    process's settings: at request time its store is the process's, the seeded one of `site`."""
    from costlens.server import ServerConfig, create_app

    folder = Path(_FILES.name)
    config = ServerConfig(budgets=folder / "budgets.toml", keys_db=folder / "keys.db")
    built = create_app(config, configure=False)
    built.state.ctx.extras["runs_dir"] = folder / "runs"
    return built


_FILES = tempfile.TemporaryDirectory(prefix="costlens-api-schema-")
schema = schemathesis.openapi.from_asgi("/api/openapi.json", _schema_app())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
# A generated body can be huge; hypothesis then warns that its repr is large (not a failure).
@pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")
def test_no_server_error_on_any_endpoint(case: Any, site: Site) -> None:
    """Generated requests for every operation (writes included: they edit a scratch budgets file)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
