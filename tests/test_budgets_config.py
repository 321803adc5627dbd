"""Budget definitions in code and in TOML: validation with errors that name the file, line and key;
`set`/`remove` edits that keep the rest of the file; status of budgets from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.budgets import (
    Budget,
    BudgetKey,
    LoggingSink,
    MemoryLedger,
    Scope,
    SlackSink,
    WebhookSink,
    budget_status,
    load_budgets,
    parse_budgets,
)
from costlens.budgets._config import remove_budget_text, render_budget, upsert_budget_text

FULL = """\
# costlens budgets
version = 1

[settings]
ledger = "sqlite:///tmp/x/budgets.db"
fail_open = true
default_max_output_tokens = 2048
reservation_ttl_s = 600

[[alerts]]
type = "slack"
name = "ops"
url = "https://hooks.example.com/T000"
retries = 5

[[alerts]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
timeout_s = 2.5
headers = { Authorization = "Bearer x" }

[[alerts]]
type = "log"
level = "error"

[[budgets]]
name = "conversation-daily"
limit_usd = "5.00"
window = "day"
timezone = "Europe/Berlin"
scope = { feature = "conversation" }
mode = "downgrade"
downgrade_to = "gpt-4o-mini"
notify = ["ops"]

# per user, rolling
[[budgets]]
name = "per-user"
limit_usd = 0.25
window = "24h"
scope = { user = "*", environment = ["prod", "staging"] }
thresholds = [25, "90%"]
"""


def test_a_full_file_loads() -> None:
    config = parse_budgets(FULL, "b.toml")
    assert config.ledger == "sqlite:///tmp/x/budgets.db"
    assert config.settings.fail_open and config.settings.default_max_output_tokens == 2048
    assert config.settings.reservation_ttl_s == 600
    slack, hook, log = config.sinks
    assert isinstance(slack, SlackSink) and slack.name == "ops" and slack.retries == 5
    assert (
        isinstance(hook, WebhookSink)
        and hook.timeout_s == 2.5
        and hook.headers == {"Authorization": "Bearer x"}
    )
    assert isinstance(log, LoggingSink) and log.level == 40
    daily, users = config.budgets
    assert daily.limit_usd == Decimal("5.00") and daily.window.describe() == "day (Europe/Berlin)"
    assert (daily.mode, daily.downgrade_to, daily.notify) == ("downgrade", "gpt-4o-mini", ("ops",))
    assert users.limit_usd == Decimal("0.25") and users.window.spec == "24h"
    assert users.thresholds == (Decimal(25), Decimal(90))
    assert users.key_for({"user": "u1", "environment": "prod"}, "m", "p") == "per-user[user=u1]"
    assert users.key_for({"user": "u1", "environment": "dev"}, "m", "p") is None


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (("limit_usd = 0.25", "limit_usd = -1"), "line 39 ([[budgets]] #2, key 'limit_usd')", "positive"),
        (('window = "24h"', 'window = "dayly"'), "line 40 ([[budgets]] #2, key 'window')", "unknown window"),
        (
            ('timezone = "Europe/Berlin"', 'timezone = "Mars/X"'),
            "line 30 ([[budgets]] #1, key 'timezone')",
            "IANA",
        ),
        (('mode = "downgrade"', 'mode = "cheaper"'), "line 32 ([[budgets]] #1, key 'mode')", "'block'"),
        (('downgrade_to = "gpt-4o-mini"\n', ""), "line 26 ([[budgets]] #1)", "needs downgrade_to"),
        (
            ('thresholds = [25, "90%"]', "thresholds = [0]"),
            "line 42 ([[budgets]] #2, key 'thresholds')",
            "percentage",
        ),
        (
            ('scope = { user = "*"', 'scope = { user = ""'),
            "line 41 ([[budgets]] #2, key 'scope')",
            "tag value",
        ),
        (('notify = ["ops"]', 'notify = ["pager"]'), "line 34 ([[budgets]] #1, key 'notify')", "'pager'"),
        (('name = "per-user"', 'nmae = "per-user"'), "line 38 ([[budgets]] #2, key 'nmae')", "unknown key"),
        (('name = "per-user"', 'name = "conversation-daily"'), "line 37:", "defined twice"),
        (("retries = 5", "retries = -1"), "line 10 ([[alerts]] #1)", "retries"),
        (('type = "log"', 'type = "pager"'), "line 23 ([[alerts]] #3, key 'type')", "log, webhook or slack"),
        (("fail_open = true", "fail_open = 1"), "line 6 ([settings])", "wrong type"),
        (("reservation_ttl_s = 600", "ttl = 600"), "line 8 ([settings])", "unknown key 'ttl'"),
    ],
)
def test_errors_name_the_file_line_and_key(edit: tuple[str, str], where: str, message: str) -> None:
    text = FULL.replace(*edit)
    assert text != FULL
    with pytest.raises(ConfigError) as info:
        parse_budgets(text, "/etc/app/budgets.toml")
    text = str(info.value)
    assert text.startswith("costlens") or "budgets file /etc/app/budgets.toml" in text
    assert where in text and message in text


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[[budgets]]\nname = "x"\nlimit_usd = "1\n')
    with pytest.raises(ConfigError, match=r"invalid TOML in budgets file .*b\.toml, line 3"):
        load_budgets(path)
    with pytest.raises(ConfigError, match="cannot read budgets file"):
        load_budgets(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"line 1: unknown top-level key 'budget'"):
        parse_budgets("budget = 1\n")
    with pytest.raises(ConfigError, match="missing required key 'limit_usd'"):
        parse_budgets('[[budgets]]\nname = "x"\n')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit_usd": "abc"}, "number of US dollars"),
        ({"limit_usd": "0.0000000001"}, "9 decimal places"),
        ({"limit_usd": True}, "number of US dollars"),
        ({"limit_usd": 1, "mode": "downgrade"}, "needs downgrade_to"),
        ({"limit_usd": 1, "downgrade_to": "m"}, "only used with mode 'downgrade'"),
        ({"limit_usd": 1, "thresholds": "50"}, "list of percentages"),
        ({"limit_usd": 1, "unknown_price": "maybe"}, "'block', 'allow'"),
        ({"limit_usd": 1, "scope": {"user": ["*"]}}, "'\\*' alone"),
        ({"limit_usd": 1, "notify": "ops"}, "list of alert sink names"),
    ],
)
def test_budget_arguments_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Budget("b", **kwargs)  # type: ignore[arg-type]


def test_budget_names_and_money() -> None:
    with pytest.raises(ConfigError, match="not valid"):
        Budget("has space", limit_usd=1)
    assert Budget("b", limit_usd=0.1).limit_usd == Decimal("0.1")  # a float, read from its repr
    assert Budget("b", limit_usd="$2.50").limit_nanousd == 2_500_000_000
    assert Budget("w", limit_usd=1, mode="warn").unknown_price == "allow"
    assert Budget("b", limit_usd=1).unknown_price == "block"


def test_scopes() -> None:
    scope = Scope({"feature": "chat", "user": "*", "model": ["a", "b"]})
    assert scope.key_suffix({"feature": "chat", "user": "x,y=z"}, "a", "p") == "[user=x%2Cy%3Dz]"
    assert scope.key_suffix({"feature": "chat"}, "a", "p") is None
    assert scope.key_suffix({"feature": "chat", "user": "u"}, "c", "p") is None
    assert Scope().key_suffix({}, "m", "p") == ""
    assert Scope({"model": "*"}).key_suffix({}, "gpt", "p") == "[model=gpt]"
    assert scope.describe() == "feature=chat, model=a|b, user=*"


def test_set_and_remove_edit_one_block_and_keep_the_rest() -> None:
    changed = Budget("per-user", limit_usd="1", window="week", timezone="Asia/Kolkata", scope={"user": "*"})
    text = upsert_budget_text(FULL, changed)
    assert "# costlens budgets" in text and "# per user, rolling" in text
    config = parse_budgets(text)
    assert [b.name for b in config.budgets] == ["conversation-daily", "per-user"]
    assert config.budgets[1] == changed
    added = upsert_budget_text(text, Budget("new", limit_usd=3))
    assert parse_budgets(added).budgets[-1].name == "new" and added.startswith(text)
    removed = remove_budget_text(added, "conversation-daily")
    assert removed is not None
    assert [b.name for b in parse_budgets(removed).budgets] == ["per-user", "new"]
    assert "[[alerts]]" in removed and remove_budget_text(removed, "nope") is None
    assert parse_budgets(upsert_budget_text("", changed)).budgets == [changed]


def test_render_round_trips_every_field() -> None:
    made = Budget(
        "r", limit_usd="12.5", window="month", timezone="America/New_York", scope={"project": ["a", "b c"]},
        mode="warn", thresholds=[12.5, 100], forecast=False, notify=["x"],
    )  # fmt: skip
    text = render_budget(made)
    assert 'limit_usd = "12.5"' in text and 'thresholds = ["12.5", 100]' in text
    parsed = parse_budgets(text + '\n[[alerts]]\ntype = "log"\nname = "x"\n').budgets[0]
    assert parsed == made


def test_budget_status_shows_spent_reserved_remaining_projection_and_thresholds() -> None:
    ledger = MemoryLedger()
    day = Budget("d", limit_usd="1", window="day")
    users = Budget("u", limit_usd="1", window="day", scope={"user": "*"})
    at = datetime(2025, 6, 1, 12, tzinfo=UTC)
    pos = day.window.position(at)
    r = ledger.reserve(
        [BudgetKey("d", day.limit_nanousd, pos.since_us, pos.bucket_us)], 600_000_000, 60, at=at
    )
    ledger.settle(r, 600_000_000)
    ledger.reserve([BudgetKey("d", day.limit_nanousd, pos.since_us, pos.bucket_us)], 100_000_000, 60, at=at)
    ledger.reserve([BudgetKey("u[user=a]", 10**9, pos.since_us, pos.bucket_us)], 1, 60, at=at)
    rows = budget_status([day, users], ledger, at=at + timedelta(seconds=1))
    d, u = rows
    assert (d.spent_usd, d.reserved_usd, d.remaining_usd) == (Decimal("0.6"), Decimal("0.1"), Decimal("0.3"))
    assert d.thresholds_crossed == (Decimal(50),) and d.projected_usd is not None and d.projected_usd > 1
    assert d.eta is not None and d.eta < at + timedelta(hours=12)
    assert u.key == "u[user=a]" and u.reserved_usd == Decimal("1e-9")
    assert d.as_dict()["thresholds_crossed"] == ["50%"]


def test_configure_sets_the_process_default_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`configure(ledger=URL)` is the ledger of budgets defined later without one; the env var and
    then the SQLite file are the fallbacks; a budgets file's own `[settings] ledger` still wins."""
    import costlens
    from costlens.budgets import MemoryLedger
    from costlens.budgets._sqlite_ledger import SQLiteLedger
    from costlens.config import default_ledger_url

    monkeypatch.setenv("COSTLENS_LEDGER", f"sqlite://{tmp_path / 'env.db'}")
    try:
        costlens.configure(store="memory://")
        assert default_ledger_url() == f"sqlite://{tmp_path / 'env.db'}"
        costlens.configure(store="memory://", ledger="memory://")
        assert default_ledger_url() == "memory://"
        engine = costlens.configure_budgets([])
        assert isinstance(engine.ledger, MemoryLedger)
        own = tmp_path / "budgets.toml"
        own.write_text(f'[settings]\nledger = "sqlite://{tmp_path / "file.db"}"\n', encoding="utf-8")
        assert isinstance(costlens.configure_budgets(file=own).ledger, SQLiteLedger)
        with pytest.raises(ConfigError, match=r"unknown ledger URL 'mysql://x': use one of .*redis://"):
            costlens.configure(store="memory://", ledger="mysql://x")
    finally:
        from costlens.config import reset_budgets

        reset_budgets()
        costlens.configure(store="memory://", durability="sync")
