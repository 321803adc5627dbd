"""`insert_rows`: many rows in a few multi-row statements, exactly as one statement per row would.

Few statements matter because Python's `sqlite3` hands the GIL away on every statement step: with
`executemany` a writer thread in a busy process paid a context switch per row (issue 14)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.store._sqlite_conn import insert_rows

_HEAD = "INSERT INTO t (k, b, amount)"
_ADD = " ON CONFLICT (k, b) DO UPDATE SET amount = amount + excluded.amount"


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT NOT NULL, b INTEGER NOT NULL, amount INTEGER, PRIMARY KEY (k, b))")
    return conn


class _Counting:
    """A connection that counts the statements run through it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements = 0

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        self.statements += 1
        return self.conn.execute(sql, params)  # type: ignore[arg-type]

    def getlimit(self, category: int) -> int:
        return self.conn.getlimit(category)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.integers(0, 3), st.integers(-(2**40), 2**40)), max_size=700
    )
)
def test_upserts_add_up_like_one_statement_per_row(rows: list[tuple[str, int, int]]) -> None:
    one_by_one, together = _table(), _table()
    for row in rows:
        one_by_one.execute(f"{_HEAD} VALUES (?, ?, ?){_ADD}", row)
    insert_rows(together, _HEAD, rows, _ADD)
    select = "SELECT k, b, amount FROM t ORDER BY k, b"
    assert together.execute(select).fetchall() == one_by_one.execute(select).fetchall()


@pytest.mark.parametrize(
    ("rows", "statements"),
    [(0, 0), (1, 1), (2, 1), (8, 1), (9, 2), (256, 1), (300, 4), (511, 9), (1000, 7)],
)
def test_a_batch_takes_a_handful_of_statements(rows: int, statements: int) -> None:
    conn = _table()
    counting = _Counting(conn)
    insert_rows(counting, "INSERT INTO t (k, b, amount)", [(str(i), 0, i) for i in range(rows)])  # type: ignore[arg-type]
    assert counting.statements == statements
    assert conn.execute("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM t").fetchone() == (
        rows,
        sum(range(rows)),
    )


def test_a_connection_allowing_few_variables_gets_smaller_statements() -> None:
    conn = _table()
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # 33 rows of 3 at most: 32 per statement
    insert_rows(conn, _HEAD, [(str(i), 0, 1) for i in range(500)])
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (500,)


def test_a_failing_row_fails_the_batch_and_the_transaction_rolls_back() -> None:
    conn = _table()
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, _HEAD, [("a", 0, 1), ("b", 0, 2), ("a", 0, 3)])  # no ON CONFLICT: a clash
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)


def test_a_few_rows_over_a_lowered_variable_limit_are_split() -> None:
    conn = _table()
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # 8 rows of 3 = 24 values: too many for one
    insert_rows(conn, _HEAD, [(str(i), 0, i) for i in range(8)])
    assert conn.execute("SELECT COUNT(*), SUM(amount) FROM t").fetchone() == (8, 28)
