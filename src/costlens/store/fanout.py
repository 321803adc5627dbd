"""`FanoutStore`: every append goes to several stores, reads come from the first (the primary).

Opened by a comma-separated URL list, `open_store("postgresql://u@h:5432/db,clickhouse://h:9000/db")`:
the transactional store answers reads while an analytics store receives a copy of every call.

An append is attempted on every store even when one fails; then `FanoutWriteError` names the
stores that failed (the others have the records). Appends are idempotent by id on every backend,
so the recorder's spool can replay the whole batch to all of them: the stores that already have
it skip it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from costlens._errors import CostlensError
from costlens.store._base import SpendQuery, SpendRow, Store, UnpricedModel, scan_calls
from costlens.usage import CallRecord

__all__ = ["FanoutStore", "FanoutWriteError", "safe_url"]

_PASSWORD = re.compile(r"(://[^/:@]*:)[^@/]*@")


def safe_url(url: str) -> str:
    """The URL with any password replaced by `***` (for messages and repr)."""
    return _PASSWORD.sub(r"\1***@", url)


class FanoutWriteError(CostlensError):
    """Some of a fan-out's stores failed a write; `failures` pairs each one's name with its error."""

    def __init__(self, action: str, failures: list[tuple[str, BaseException]], total: int) -> None:
        self.failures = failures
        detail = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        super().__init__(
            f"could not {action} {len(failures)} of {total} stores ({detail}). The other stores were "
            "written; writes are idempotent by record id, so replaying the same records to all "
            "stores is safe"
        )


class FanoutStore:
    """Writes to `primary` and every one of `others`; reads from `primary` only.

    `names` label the stores in errors and repr (their URLs when opened from a URL list);
    by default each store's repr.
    """

    def __init__(self, primary: Store, *others: Store, names: Sequence[str] | None = None) -> None:
        self.stores: tuple[Store, ...] = (primary, *others)
        if names is not None and len(names) != len(self.stores):
            raise ValueError(f"FanoutStore got {len(names)} names for {len(self.stores)} stores")
        self.names = tuple(names) if names is not None else tuple(repr(s) for s in self.stores)

    @property
    def primary(self) -> Store:
        return self.stores[0]

    def __repr__(self) -> str:
        return f"FanoutStore({', '.join(safe_url(name) for name in self.names)})"

    def _each(self, action: str, method: str, *args: Any) -> None:
        """Call `method` on every store; then raise naming the ones that failed, if any did."""
        failures: list[tuple[str, BaseException]] = []
        for name, store in zip(self.names, self.stores, strict=True):
            try:
                getattr(store, method)(*args)
            except Exception as exc:  # the others must still be attempted
                failures.append((safe_url(name), exc))
        if failures:
            raise FanoutWriteError(action, failures, len(self.stores)) from failures[0][1]

    # -- writes go everywhere ----------------------------------------------------------------

    def append(self, records: Sequence[CallRecord]) -> None:
        if records:
            self._each("append to", "append", records)

    def migrate(self) -> None:
        self._each("migrate", "migrate")

    def close(self) -> None:
        self._each("close", "close")

    def check_exists(self) -> None:
        """Readers read the primary only, so only it must exist (`open_store(url, create=False)`)."""
        check = getattr(self.primary, "check_exists", None)
        if callable(check):
            check()

    # -- reads come from the primary ---------------------------------------------------------

    def query(self, q: SpendQuery) -> list[SpendRow]:
        return self.primary.query(q)

    def scan(self, q: SpendQuery, fields: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        return scan_calls(self.primary, q, fields)

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        return self.primary.iter_records(since, until, where, limit, newest_first)

    def unpriced_models(self) -> list[UnpricedModel]:
        return self.primary.unpriced_models()
