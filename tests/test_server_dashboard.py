"""The dashboard in a real headless Chromium: every page against a seeded SQLite store, a budgets file
with a SQLite ledger and an experiment run; numbers checked against the library functions.

Chromium is Debian's (`scripts/chromium.sh` installs it); driven by Python playwright without
`playwright install`. The app runs under uvicorn on a free loopback port in a background thread.
Screenshots go to a temporary folder, and to `$COSTLENS_SCREENSHOTS` when it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
PAGES = ("/", "/?period=30d", "/?period=90d", "/budgets", "/calls", "/anomalies", "/roi", "/evals", "/prices")
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "mystery-model")
FEATURES = ("chat", "search", "summarize")
USERS = ("alice", "bob", "carol", "dave", None)

pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")


def _chromium() -> None:
    if not CHROMIUM.exists() and (ROOT / "scripts" / "chromium.sh").is_file():
        subprocess.run(["bash", str(ROOT / "scripts" / "chromium.sh")], check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and scripts/chromium.sh could not install Debian's chromium")


@dataclass
class Site:
    base: str
    home: Path
    store_url: str
    ledger_url: str
    budgets: Path
    now: datetime
    shots: list[Path]
    app: Any = None
    browser: Any = None
    records: list[Any] = field(default_factory=list)

    @property
    def store(self) -> Any:
        return self.app.state.ctx.store

    def configure(self) -> None:
        """Point the process (the app's store and budgets) at the seeded site again."""
        import costlens
        from costlens.config import configure_budgets

        costlens.configure(store=self.store_url, ledger=self.ledger_url, durability="sync")
        configure_budgets(file=self.budgets)


def _records(now: datetime) -> list[Any]:
    from costlens.usage import CallRecord

    out = []
    for i in range(240):
        days, hours = i % 40, 2 + (i * 7) % 19  # 2h..20h into a day: never near a period's edge
        model = MODELS[i % len(MODELS)]
        user = USERS[i % len(USERS)]
        tags = {"feature": FEATURES[i % len(FEATURES)], **({"user": user} if user else {})}
        routed = i % 4 == 1
        priced = model != "mystery-model"
        out.append(
            CallRecord(
                provider="anthropic" if model.startswith("claude") else "openai",
                operation="chat",
                request_model="gpt-4o" if routed else model,
                response_model="gpt-4o-mini" if routed else model,
                started_at=now - timedelta(days=days, hours=hours, minutes=i % 50),
                latency_ms=100.0 + i,
                input_tokens=1000 + 13 * i,
                output_tokens=200 + 7 * i,
                cost_nanousd=1_234_567 * (i + 1) if priced else None,
                price_known=priced,
                tags=tags,
                route={
                    "policy": "router:cheapest",
                    "from": "gpt-4o",
                    "to": "gpt-4o-mini",
                    "reason": "cheapest candidate above the quality bar",
                }
                if routed
                else None,
                id=f"call-{i:04d}",
            )
        )
    spike = now - timedelta(days=1, hours=3)  # one hour of gpt-4o spend far above its week
    out += [
        CallRecord(
            provider="openai",
            operation="chat",
            request_model="gpt-4o",
            response_model="gpt-4o",
            started_at=spike + timedelta(minutes=m),
            input_tokens=90_000,
            output_tokens=9_000,
            cost_nanousd=4_321_000_000,
            price_known=True,
            tags={"feature": "search", "user": "erin"},
            id=f"spike-{m}",
        )
        for m in range(3)
    ]
    return out


def _budgets(home: Path, ledger_path: Path) -> Path:
    from costlens.budgets import Budget, BudgetKey
    from costlens.budgets._sqlite_ledger import SQLiteLedger

    file = home / "budgets.toml"
    file.write_text(
        '[[budgets]]\nname = "monthly"\nlimit_usd = "50"\nwindow = "month"\n\n'
        '[[budgets]]\nname = "chat-daily"\nlimit_usd = "2"\nwindow = "day"\nscope = { feature = "chat" }\n\n'
        '[[budgets]]\nname = "users"\nlimit_usd = "1"\nwindow = "lifetime"\nscope = { user = "*" }\n',
        encoding="utf-8",
    )
    ledger = SQLiteLedger(ledger_path)
    now = datetime.now(UTC)
    spends = [
        (Budget("monthly", limit_usd=50, window="month"), "monthly", 3_456_789_012),
        (Budget("chat-daily", limit_usd=2, window="day"), "chat-daily", 1_700_000_000),
        (Budget("users", limit_usd=1, window="lifetime"), "users[user=alice]", 1_250_000_000),
        (Budget("users", limit_usd=1, window="lifetime"), "users[user=bob]", 120_000_000),
    ]
    for budget, key, amount in spends:
        pos = budget.window.position(now)
        k = BudgetKey(key, budget.limit_nanousd, pos.since_us, pos.bucket_us)
        ledger.settle(ledger.reserve([k], 5, 60), amount)
    ledger.reserve([BudgetKey("monthly", 50_000_000_000, *_pos(now))], 25_000_000, 3600)  # in flight
    ledger.close()
    return file


def _pos(now: datetime) -> tuple[int, int | None]:
    from costlens.budgets import Budget

    pos = Budget("monthly", limit_usd=50, window="month").window.position(now)
    return pos.since_us, pos.bucket_us


def _eval_run(home: Path) -> str:
    from costlens.evals._results import RESULTS_FILE, RUN_FILE, Outcome, RunMeta, StrategyInfo

    run_id = "triage-20250101-abc123"
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    strategies = (
        StrategyInfo("mini", "gpt-4o-mini"),
        StrategyInfo("big", "gpt-4o"),
        StrategyInfo("mid", "claude-3-5-haiku"),
        StrategyInfo("mystery", "mystery-model"),
    )
    items = tuple(f"item-{i}" for i in range(20))
    meta = RunMeta(
        run_id=run_id, name="ticket triage", created="2025-01-01T12:00:00+00:00", split="test",
        scorer="exact", dataset="tickets.jsonl", dataset_fingerprint="sha256:0", item_ids=items,
        strategies=strategies,
    )  # fmt: skip
    (folder / RUN_FILE).write_text(json.dumps(meta.to_json()), encoding="utf-8")
    accuracy = {"mini": 13, "big": 18, "mid": 12, "mystery": 15}
    cost = {
        "mini": Decimal("0.000150"),
        "big": Decimal("0.002500"),
        "mid": Decimal("0.000800"),
        "mystery": None,
    }
    with (folder / RESULTS_FILE).open("w", encoding="utf-8") as out:
        for s in strategies:
            for n, item in enumerate(items):
                o = Outcome(
                    strategy=s.name, item_id=item, correct=n < accuracy[s.name], model=s.model,
                    input_tokens=500, output_tokens=50, cost=cost[s.name], latency_ms=300.0 + n, calls=1,
                )  # fmt: skip
                out.write(json.dumps({"outcome": o.to_json(), "records": []}) + "\n")
    return run_id


class _Server:
    """uvicorn in a thread, on a socket bound here; `ready` is set once it serves (or failed)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        ready = self.ready = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                try:
                    await super().startup(sockets)
                finally:
                    ready.set()

        self.server = Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(30) and self.server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    import costlens
    from costlens.config import reset_budgets
    from costlens.server import ServerConfig, create_app

    home = tmp_path_factory.mktemp("dashboard-home")
    shots = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("COSTLENS_SCREENSHOTS"):
        shots.append(Path(os.environ["COSTLENS_SCREENSHOTS"]))
        shots[-1].mkdir(parents=True, exist_ok=True)
    db, ledger = home / "costlens.db", home / "budgets.db"
    budgets = _budgets(home, ledger)
    _eval_run(home)
    now = datetime.now(UTC)
    config = ServerConfig(store=f"sqlite://{db}", ledger=f"sqlite://{ledger}", budgets=budgets)
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTLENS_HOME", str(home))
    app = create_app(config)
    records = _records(now)
    app.state.ctx.store.append(records)
    s = Site("", home, config.store or "", config.ledger or "", budgets, now, shots, app, browser, records)
    try:
        with _Server(app) as base:
            s.base = base
            yield s
    finally:
        reset_budgets()
        costlens.configure(store="memory://", durability="sync")
        mp.undo()


@pytest.fixture(autouse=True)
def _site_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads the site's home (the conftest gives every test a fresh one)."""
    if "site" in request.fixturenames:
        monkeypatch.setenv("COSTLENS_HOME", str(request.getfixturevalue("site").home))


class Watched:
    """A page that records console errors, uncaught exceptions and every request it makes."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.context = site.browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: str, status: int = 200) -> Any:
        response = self.page.goto(self.site.base + path, wait_until="load")
        assert response is not None and response.status == status, (path, response and response.status)
        if self.page.locator(".chart").count():
            self.page.wait_for_selector(".chart[data-rendered='1']", timeout=15_000)
        return self.page

    def shot(self, name: str, *, full_page: bool = True) -> None:
        first = self.site.shots[0] / f"{name}.png"
        self.page.screenshot(path=str(first), full_page=full_page)
        for folder in self.site.shots[1:]:
            shutil.copy(first, folder / first.name)

    def expect_status_error(self, status: int) -> None:
        """Chromium logs a document answered with an error status as a console error: expected here."""
        expected = f"the server responded with a status of {status}"
        assert any(expected in e for e in self.errors), self.errors
        self.errors = [e for e in self.errors if expected not in e]

    def check_clean(self) -> None:
        assert not self.errors, self.errors
        outside = [
            u for u in self.requests if not u.startswith(self.site.base + "/") and not u.startswith("data:")
        ]
        assert not outside, outside

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(site: Site) -> Iterator[Watched]:
    watched = Watched(site)
    try:
        yield watched
        watched.check_clean()
    finally:
        watched.close()


def _usd(locator: Any) -> Decimal:
    return Decimal(locator.locator(".money").first.get_attribute("data-usd"))


def test_every_page_renders_with_charts_no_errors_and_only_local_requests(site: Site, page: Watched) -> None:
    for path in PAGES:
        p = page.open(path)
        assert p.locator("h1").count() == 1 and p.title().endswith("costlens")
        name = "page" + path.replace("/", "_").replace("?", "_").replace("=", "-")
        page.shot(name, full_page=path != "/prices")  # 2,000 rows: the first screenful is enough
    run = page.open("/evals").locator("#runs a").first
    run.click()
    page.page.wait_for_selector(".chart[data-rendered='1']")
    page.shot("page_eval_run")
    assert any(u.endswith("/static/plotly.min.js") for u in page.requests)


def test_overview_numbers_are_the_library_spend(site: Site, page: Watched) -> None:
    from costlens.analytics import spend

    for period, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        p = page.open(f"/?period={period}")
        now = datetime.now(UTC)
        since = now - timedelta(days=days)
        totals = spend(site.store, [], since=since, until=now, compare="previous").totals
        assert _usd(p.locator("[data-total='cost_usd']")) == totals["cost_usd"]
        assert _usd(p.locator("[data-total='previous_cost_usd']")) == totals["previous_cost_usd"]
        assert _usd(p.locator("[data-total='cost_change_usd']")) == totals["cost_change_usd"]
        assert p.locator("[data-total='calls']").inner_text() == f"{totals['calls']:,}"
        for key in ("user", "feature", "model"):
            rows = spend(site.store, [key], since=since, until=now, top=10).all_rows
            shown = p.locator(f"#top-{key} tbody tr")
            assert shown.count() == len(rows)
            for i, row in enumerate(rows):
                tr = shown.nth(i)
                assert tr.get_attribute("data-key") == ("(none)" if row[key] is None else row[key])
                if row["calls"] == row["unpriced_calls"]:
                    assert "unpriced" in tr.inner_text()
                else:
                    assert _usd(tr.locator("td").nth(2)) == row["cost_usd"]
        money = p.locator("[data-total='cost_usd'] .money").first
        assert money.get_attribute("title") == f"${format(totals['cost_usd'].normalize(), 'f')} exactly"
    # the chart's bars are the same day sums
    figure = json.loads(p.locator("#chart-model-data").inner_text())
    series = spend(site.store, ["model"], bucket="day", since=since, until=now, measures=["cost_usd"], top=8)
    assert sum(Decimal(v) for trace in figure["data"] for v in trace["customdata"]) == sum(
        (r["cost_usd"] for r in series.all_rows), Decimal(0)
    )


def test_anomalies_page_is_detect_anomalies(site: Site, page: Watched) -> None:
    from costlens.analytics import detect_anomalies

    p = page.open("/anomalies?period=7d&by=provider")
    page.shot("anomalies")
    now = datetime.now(UTC)
    found = detect_anomalies(site.store, ["provider"], since=now - timedelta(days=7), until=now)
    assert found, "the seeded spike is an anomaly"
    rows = p.locator("#anomalies tbody tr")
    assert rows.count() == len(found)
    for i, a in enumerate(found):
        cells = rows.nth(i).locator("td")
        assert cells.nth(0).inner_text() == a.keys["provider"] and cells.nth(1).inner_text() == a.metric
        assert _usd(cells.nth(7)) == a.cost_usd
        if a.metric == "spend":
            assert _usd(cells.nth(3)) == a.value and _usd(cells.nth(4)) == a.baseline
    assert p.locator("#chart-anomalies .scatterlayer .point").count() >= 1


def test_budgets_page_is_budget_status(site: Site, page: Watched) -> None:
    from costlens.budgets import budget_status, load_budgets, open_ledger

    p = page.open("/budgets")
    page.shot("budgets")
    book = open_ledger(site.ledger_url)
    try:
        statuses = budget_status(load_budgets(site.budgets).budgets, book)
    finally:
        book.close()
    rows = p.locator("#budgets tbody tr")
    assert rows.count() == len(statuses) == 4
    for s in statuses:
        tr = p.locator(f"#budgets tbody tr[data-key='{s.key}']")
        assert _usd(tr.locator("[data-col='spent']")) == s.spent_usd
        assert _usd(tr.locator("[data-col='reserved']")) == s.reserved_usd
        assert _usd(tr.locator("[data-col='limit']")) == s.limit_usd
    assert "status-over" in (p.locator("tr[data-key='users[user=alice]']").get_attribute("class") or "")
    assert "status-warn" in (p.locator("tr[data-key='chat-daily']").get_attribute("class") or "")
    assert "status-ok" in (p.locator("tr[data-key='users[user=bob]']").get_attribute("class") or "")
    monthly = p.locator("tr[data-key='monthly']")
    assert _usd(monthly.locator("[data-col='reserved']")) == Decimal("0.025")
    assert monthly.locator(".threshold").all_inner_texts() == ["50%", "80%", "100%"]


def test_calls_page_lists_newest_first_with_routing_and_pages(site: Site, page: Watched) -> None:
    p = page.open("/calls?size=25")
    page.shot("calls")
    newest = list(site.store.iter_records(limit=50, newest_first=True))
    assert p.locator("#calls tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)") == [
        r.id for r in newest[:25]
    ]
    assert p.locator("#range").inner_text() == "Calls 1–25 of 243, newest first."
    for r in newest[:25]:
        tr = p.locator(f"tr[data-id='{r.id}']")
        if r.cost_nanousd is None:
            assert tr.locator("[data-col='cost']").inner_text() == "unpriced"
        else:
            assert _usd(tr.locator("[data-col='cost']")) == r.cost_usd
        route = tr.locator("td.route").inner_text()
        assert ("router:cheapest" in route and "gpt-4o → gpt-4o-mini" in route) == (r.route is not None)
    p.click("#older")
    p.wait_for_selector("#range")
    assert p.locator("#range").inner_text() == "Calls 26–50 of 243, newest first."
    assert p.locator("#calls tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)") == [
        r.id for r in newest[25:50]
    ]


def test_roi_form_posts_and_shows_the_verdict_and_the_crossover_chart(site: Site, page: Watched) -> None:
    from costlens.roi import parse_scenario, plan
    from costlens.roi._load import read_data

    p = page.open("/roi")
    assert p.locator("#f-requests_per_month").input_value() == "50000"
    p.fill("#f-requests_per_month", "8000")
    p.fill("#f-title", "<script>alert(1)</script> small volume")
    p.click("#plan")
    p.wait_for_selector("#verdict")
    p.wait_for_selector(".chart[data-rendered='1']")
    page.shot("roi")
    data = read_data(ROOT / "examples" / "roi" / "published_a.toml")
    data["volume"]["requests_per_month"] = 8000
    expected = plan(parse_scenario(data))
    assert expected.recommendation is not None
    assert p.locator("#verdict .headline").inner_text() == expected.recommendation.headline
    assert p.locator("#chart-roi .scatterlayer .trace").count() >= 2
    assert p.locator("#f-title").input_value() == "<script>alert(1)</script> small volume"
    p.fill("#f-horizon_months", "twelve")
    p.click("#plan")
    p.wait_for_selector("#roi-error")
    page.expect_status_error(422)  # the form comes back with the error, as 422 Unprocessable Entity
    assert "Horizon (months): 'twelve' is not a number" in p.locator("#roi-error").inner_text()


def test_evals_pages_show_the_runs_and_the_frontier(site: Site, page: Watched) -> None:
    from costlens.evals._results import RunResult
    from costlens.evals._stats import summarize_run

    p = page.open("/evals")
    assert p.locator("#runs tbody tr").count() == 1
    p.click("#runs a")
    p.wait_for_selector(".chart[data-rendered='1']")
    summaries = summarize_run(RunResult.load(site.home / "runs" / "triage-20250101-abc123"))
    for s in summaries:
        tr = p.locator(f"#summary tr[data-strategy='{s.strategy}']")
        assert float(tr.locator("[data-col='accuracy']").get_attribute("data-value") or "") == s.accuracy
        if s.cost_per_call is None:
            assert tr.locator("[data-col='cost_per_call']").inner_text() == "unpriced"
        else:
            assert _usd(tr.locator("[data-col='cost_per_call']")) == s.cost_per_call
        assert ("frontier" in (tr.get_attribute("class") or "")) == s.on_frontier
    assert "mystery" in p.locator(".note-line").inner_text()
    assert p.locator("#chart-frontier .scatterlayer .point").count() >= 3


def test_prices_page_filters_by_provider(site: Site, page: Watched) -> None:
    from costlens.pricing import get_catalogue

    p = page.open("/prices?provider=anthropic&q=haiku")
    page.shot("prices_anthropic")
    rows = p.locator("#prices tbody tr")
    assert rows.count() > 0
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.provider)")) == {"anthropic"}
    catalogue = get_catalogue()
    for i in range(rows.count()):
        tr = rows.nth(i)
        price = catalogue.resolve("anthropic", tr.get_attribute("data-model") or "")
        assert price is not None
        assert _usd(tr.locator("[data-col='input']")) == Decimal(price.rates.per_mtok()["input"] or "")
        assert _usd(tr.locator("[data-col='output']")) == Decimal(price.rates.per_mtok()["output"] or "")
    p.select_option("select[name=provider]", "openai")
    p.fill("input[name=q]", "")
    p.click("form.filters button")
    p.wait_for_url("**/prices?provider=openai*")
    assert set(p.locator("#prices tbody tr").evaluate_all("r => r.map(x => x.dataset.provider)")) == {
        "openai"
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/?period=1y", 422), ("/?period=", 200), ("/calls?size=0", 422), ("/calls?size=abc", 422),
        ("/calls?before=zz", 422), ("/calls?before=123:nope&seen=-5", 422), ("/calls?before=1:a", 200),
        ("/anomalies?by=%3Cscript%3E", 422), ("/anomalies?threshold=inf", 422), ("/anomalies?metric=x", 422),
        ("/evals/nope", 404), ("/evals/..%2F..%2Fetc", 404), ("/prices?provider=..%2F", 422),
        ("/prices?q=" + "x" * 101, 422), ("/static/../../etc/passwd", 404), ("/static/nope.js", 404),
    ],
)  # fmt: skip
def test_odd_query_params_get_a_friendly_answer(site: Site, path: str, status: int) -> None:
    import httpx

    response = httpx.get(site.base + path, timeout=30)
    assert response.status_code == status
    assert "<script>alert" not in response.text and "Traceback" not in response.text


def test_empty_store_pages_say_what_to_do(site: Site, page: Watched, tmp_path: Path) -> None:
    """A second app on a memory store, no budgets file, no runs: every page explains what to do."""
    from costlens.config import reset_budgets
    from costlens.server import ServerConfig, create_app

    os.environ["COSTLENS_HOME"] = str(tmp_path)  # restored by the autouse monkeypatch
    reset_budgets()
    texts = {}
    try:
        with _Server(create_app(ServerConfig(store="memory://"))) as base:
            for path in ("/", "/budgets", "/calls", "/anomalies", "/evals"):
                response = page.page.goto(base + path)
                assert response is not None and response.status == 200
                texts[path] = page.page.locator("main").inner_text()
                page.shot("empty" + (path.replace("/", "_") if path != "/" else "_overview"))
            page.requests = [u.replace(base, site.base) for u in page.requests]
    finally:
        site.configure()
    assert "No calls recorded in this period" in texts["/"]
    assert "No budgets yet" in texts["/budgets"]
    assert "No calls recorded yet" in texts["/calls"]
    assert "No anomalies" in texts["/anomalies"]
    assert "No experiment runs yet" in texts["/evals"]
