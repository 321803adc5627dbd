"""Recorded latency per model, for the router's latency target (`LatencyTarget(latency_p95(store))`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from costlens.analytics._spend import spend
from costlens.store import Store

__all__ = ["latency_p95"]


def latency_p95(store: Store, *, since: datetime | timedelta = timedelta(days=7)) -> dict[str, float]:
    """p95 latency (ms) of successful calls per answering model over the window (default: 7 days).
    Models without recorded latency are left out (the router then lets them pass)."""
    start = datetime.now(UTC) - since if isinstance(since, timedelta) else since
    report = spend(
        store, by=["model"], since=start, where={"status": "ok"}, measures=["calls", "latency_p95"]
    )
    out: dict[str, float] = {}
    for row in report.rows:
        value = row.get("latency_p95")
        if isinstance(value, int | float) and isinstance(row.get("model"), str):
            out[str(row["model"])] = float(value)
    return out
