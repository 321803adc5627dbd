"""The experiment runner: every strategy on every item of the split, through tracked clients.

    result = run_experiment(load_spec("spec.toml"))          # clients built from the environment
    result = run_experiment(spec, clients={"openai": client})  # or given (tracked here if not yet)

What a run guarantees:
- every call goes through the process's pipeline (its budgets included) plus the run's own cost
  cap in the `cap` slot: a lifetime budget on the run's tag, so the cap holds under concurrency
  exactly as budgets do, and a resumed run is capped at what is left of it;
- each call is tagged `eval_run`, `eval_strategy`, `eval_item` (a judge's calls `eval_role=judge`), so
  `costlens report --by tag:eval_strategy` shows what the experiment cost;
- resumable (see `costlens.evals._journal`): the run id is derived from the spec and the dataset, so
  running the same spec again continues the run; a finished run is answered from its journal;
- 429 and 5xx are retried by the SDK clients (`max_retries`, honouring Retry-After);
  `requests_per_minute` spaces the calls out; identical requests are answered from the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError
from costlens.evals._calls import Clients, answer_text, call_model, client_for
from costlens.evals._config import ExperimentSpec
from costlens.evals._dataset import Dataset, Item
from costlens.evals._journal import Journal, ResultCache
from costlens.evals._results import RUN_FILE, Outcome, RunMeta, RunResult, StrategyInfo, default_runs_dir
from costlens.evals._strategy import Prompter, Strategy
from costlens.scorers import Scorer
from costlens.usage import NANO, CallRecord

__all__ = ["Progress", "RunStopped", "run_experiment", "run_id_for"]

#: Spec fields that change how a run goes, not what it measures: not part of the run id.
_KNOBS = {"concurrency", "requests_per_minute", "max_retries", "timeout_s", "max_cost_usd", "cache", "tags"}


@dataclass(frozen=True, slots=True)
class Progress:
    """Handed to `on_progress` after each outcome: the run so far."""

    done: int
    total: int
    spent: Decimal  # paid in this run and the runs it resumes (cached answers are free)
    correct: int
    errors: int
    cached: int
    last: Outcome | None = None


class RunStopped(ConfigError):
    """The run stopped before the end (its cost cap, or Ctrl-C); what it finished is kept."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


Task = tuple[Strategy, Item, int]


def run_id_for(spec: ExperimentSpec, dataset: Dataset) -> str:
    """`<name>-<8 hex>`: the same spec on the same data is the same run (so it resumes)."""
    measured = {k: v for k, v in _spec_json(spec).items() if k not in _KNOBS}
    digest = hashlib.sha256(
        json.dumps([measured, dataset.fingerprint()], sort_keys=True, default=str).encode()
    ).hexdigest()
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:40] or "run"
    return f"{slug}-{digest[:8]}"


def run_experiment(
    spec: ExperimentSpec,
    *,
    clients: Clients | None = None,
    dataset: Dataset | None = None,
    scorer: Scorer | None = None,
    runs_dir: str | Path | None = None,
    run_id: str | None = None,
    keep_answers: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run (or resume) the experiment and return its result. Raises `RunStopped` (carrying the
    partial result) when the cost cap or Ctrl-C ends it early; running it again continues."""
    data = dataset if dataset is not None else spec.load_dataset()
    items = list(data.split(spec.split))[: spec.limit]
    if not items:
        raise ConfigError(
            f"the {spec.split!r} split of {spec.dataset.path} has no items; counts: {data.counts()}"
        )
    runs = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = runs / (run_id or run_id_for(spec, data))
    meta = _open_run(folder, spec, data, items)
    the_scorer = scorer if scorer is not None else _scorer(spec, clients)
    run = _Run(spec, meta, folder, the_scorer, clients, keep_answers, on_progress)
    return run.go(data, items)


def _scorer(spec: ExperimentSpec, clients: Clients | None) -> Scorer:
    from costlens.scorers import scorer_runtime

    if "client" in scorer_runtime(spec.scorer_name):  # a judge: its calls are tracked and priced
        return spec.build_scorer(client=client_for(clients, None, "openai", spec))
    return spec.build_scorer()


def _spec_json(spec: ExperimentSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude={"strategies": {"__all__": {"router", "retrieval"}}})
    for entry, strategy in zip(data["strategies"], spec.strategies, strict=True):
        if strategy.router is not None:
            entry["router"] = strategy.router.name
        if strategy.retrieval is not None:
            entry["retrieval"] = getattr(strategy.retrieval, "__qualname__", "retrieval")
    data["dataset"]["path"] = str(Path(spec.dataset.path).resolve())
    return data


def _open_run(folder: Path, spec: ExperimentSpec, data: Dataset, items: Sequence[Item]) -> RunMeta:
    path = folder / RUN_FILE
    if path.is_file():
        meta = RunResult.load(folder).meta
        if meta.dataset_fingerprint != data.fingerprint():
            raise ConfigError(
                f"run {meta.run_id} was measured on another version of {spec.dataset.path}; "
                "give the run another id (--fresh) or restore the dataset"
            )
        return meta
    meta = RunMeta(
        run_id=folder.name,
        name=spec.name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        split=spec.split,
        scorer=spec.scorer_name,
        dataset=str(spec.dataset.path),
        dataset_fingerprint=data.fingerprint(),
        item_ids=tuple(item.id for item in items),
        strategies=tuple(_info(s) for s in spec.strategies),
        repeats=spec.repeats,
        max_cost_usd=None if spec.max_cost_usd is None else str(spec.max_cost_usd),
        spec=_spec_json(spec),
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta.to_json(), indent=2, default=str), encoding="utf-8")
    tmp.replace(path)  # atomic: a kill leaves no half-written run.json
    return meta


def _info(strategy: Strategy) -> StrategyInfo:
    return StrategyInfo(
        name=strategy.name,
        model=strategy.model,
        kind=strategy.kind,
        recipe=strategy.recipe,
        provider=strategy.provider,
        fine_tuned_from=strategy.fine_tuned_from,
    )


class _RateLimiter:
    """Spaces call starts `60 / rpm` seconds apart across threads (a steady rate, no bursts)."""

    def __init__(self, per_minute: float | None) -> None:
        self._gap = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self._gap:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._gap
        if start > now:
            stop.wait(start - now)


class _Run:
    def __init__(
        self,
        spec: ExperimentSpec,
        meta: RunMeta,
        folder: Path,
        scorer: Scorer,
        clients: Clients | None,
        keep_answers: bool,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        from costlens.evals._capture import RunPipeline

        self.spec, self.meta, self.folder, self.scorer = spec, meta, folder, scorer
        self.client_of = {s.name: client_for(clients, s, s.api, spec) for s in spec.strategies}
        self.keep_answers = keep_answers
        self.on_progress = on_progress
        self.journal = Journal(folder)
        done, records = self.journal.read()
        self.done = done
        self.spent: Decimal = sum(
            ((o.cost or Decimal(0)) + (o.eval_cost or Decimal(0)) for o in done.values() if not o.cached),
            Decimal(0),
        )
        self.pipes = RunPipeline(meta.run_id, spec.max_cost_usd, self.spent)
        self.pipes.hand_on(records)  # a kill may have come before they reached the store
        self.cache = ResultCache(folder.parent / "cache.sqlite3") if spec.cache else None
        self.limiter = _RateLimiter(spec.requests_per_minute)
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.lock = threading.Lock()
        self.scorer_id = json.dumps(spec.scorer, sort_keys=True, default=str)

    def go(self, data: Dataset, items: Sequence[Item]) -> RunResult:
        prompters = {s.name: s.prompter(data) for s in self.spec.strategies}
        tasks = [
            (s, item, r)
            for s in self.spec.strategies
            for item in items
            for r in range(self.spec.repeats)
            if (o := self.done.get((s.name, item.id, r))) is None or o.error is not None
        ]
        total = len(items) * len(self.spec.strategies) * self.spec.repeats
        counts = [total - len(tasks), 0, 0, 0]  # done, correct, errors, cached
        for o in self.done.values():
            if o.error is None:
                counts[1] += bool(o.correct)
                counts[3] += o.cached
        self._report(counts, total, None)
        try:
            with ThreadPoolExecutor(
                max_workers=self.spec.concurrency, thread_name_prefix="costlens-eval"
            ) as pool:
                futures = [pool.submit(self._task, t, prompters[t[0].name], counts, total) for t in tasks]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    self.stop.set()  # Ctrl-C or a bug: finish what is in flight, start nothing new
                    self.stopped_by = self.stopped_by or "interrupted"
                    raise
        except KeyboardInterrupt:
            pass
        finally:
            self.journal.close()
            if self.cache is not None:
                self.cache.close()
        result = RunResult.load(self.folder)
        if self.stopped_by is not None:
            raise RunStopped(self._stop_message(result), result)
        return result

    def _stop_message(self, result: RunResult) -> str:
        finished = sum(o.error is None for o in result.outcomes)
        where = f"{finished} of {result.expected_count} answers kept in run {result.run_id}"
        if self.stopped_by == "cap":
            return (
                f"the run's cost cap (${self.spec.max_cost_usd}) was reached: {where}; "
                "raise max_cost_usd and run it again to continue"
            )
        return f"the run was interrupted: {where}; run it again to continue"

    def _report(self, counts: list[int], total: int, last: Outcome | None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(counts[0], total, self.spent, counts[1], counts[2], counts[3], last))

    def _task(self, task: Task, prompter: Prompter, counts: list[int], total: int) -> None:
        if self.stop.is_set():
            return
        outcome = self._outcome(task, prompter)
        if outcome is None:
            return
        with self.lock:
            counts[0] += outcome.error is None
            counts[1] += bool(outcome.correct)
            counts[2] += outcome.error is not None
            counts[3] += outcome.cached
            if not outcome.cached:
                self.spent += (outcome.cost or Decimal(0)) + (outcome.eval_cost or Decimal(0))
            self._report(counts, total, outcome)

    def _cache_key(self, rendered_key: str, item: Item, repeat: int) -> str:
        parts = [rendered_key, repeat, self.scorer_id, item.expected, list(item.choices)]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _outcome(self, task: Task, prompter: Prompter) -> Outcome | None:
        from costlens.budgets import BudgetExceeded, UnknownPriceBlocked
        from costlens.context import tags

        strategy, item, repeat = task
        try:
            rendered = prompter.render(item)
        except Exception as exc:  # a retrieval hook that fails: this item's error, not the run's
            return self._write(Outcome(strategy.name, item.id, repeat, error=f"rendering failed: {exc}"), [])
        key = self._cache_key(rendered.key(), item, repeat)
        if self.cache is not None and (hit := self.cache.hit(key, strategy.name, item.id, repeat)):
            return self._write(hit, [])
        self.limiter.wait(self.stop)
        if self.stop.is_set():
            return None
        run_tags = {"eval_run": self.meta.run_id, "eval_strategy": strategy.name, "eval_item": item.id}
        with self.pipes.capturing() as captured:
            started = time.perf_counter()
            try:
                with tags(**run_tags, **self.spec.tags):
                    response = call_model(self.client_of[strategy.name], strategy, rendered)
            except UnknownPriceBlocked as exc:  # the cap cannot bound it: this item's error, loudly
                outcome = _unpriced(strategy.name, item.id, repeat, exc, captured)
                return self._write(outcome, captured)
            except BudgetExceeded:
                self._stop_for_cap()
                self.pipes.hand_on(captured)
                return None
            except Exception as exc:
                latency = (time.perf_counter() - started) * 1000
                outcome = _failed(strategy.name, item.id, repeat, exc, latency, captured)
                return self._write(outcome, captured)
            latency = (time.perf_counter() - started) * 1000
            calls = list(captured)
            text = answer_text(response)
            answer = strategy.extract(text)
            try:
                with tags(**run_tags, eval_role="judge"):
                    verdict = self.scorer.score(
                        answer, item.expected, response, prompt=item.text, choices=item.choices
                    )
            except UnknownPriceBlocked as exc:
                outcome = _unpriced(strategy.name, item.id, repeat, exc, captured)
                return self._write(outcome, captured)
            except BudgetExceeded:
                self._stop_for_cap()
                self.pipes.hand_on(captured)
                return None
            except Exception as exc:
                outcome = _failed(strategy.name, item.id, repeat, exc, latency, captured, what="scoring")
                return self._write(outcome, captured)
            judged = captured[len(calls) :]
        outcome = _scored(strategy.name, item.id, repeat, verdict, calls, judged, latency)
        if self.keep_answers:
            outcome = _with_answer(outcome, answer)
        written = self._write(outcome, calls + judged)
        if self.cache is not None and outcome.error is None:
            self.cache.put(key, outcome)
        return written

    def _stop_for_cap(self) -> None:
        self.stopped_by = "cap"
        self.stop.set()

    def _write(self, outcome: Outcome, records: Sequence[CallRecord]) -> Outcome:
        self.journal.append(outcome, records)  # durable first: then the records may go on
        self.pipes.hand_on(records)
        return outcome


def _cost(records: Sequence[CallRecord]) -> Decimal | None:
    total = 0
    for r in records:
        if r.cost_nanousd is None:
            return None
        total += r.cost_nanousd
    return Decimal(total) / NANO


def _scored(
    strategy: str,
    item_id: str,
    repeat: int,
    verdict: Any,
    calls: Sequence[CallRecord],
    judged: Sequence[CallRecord],
    latency_ms: float,
) -> Outcome:
    answered = [r for r in calls if r.status == "ok"] or list(calls)
    last = answered[-1] if answered else None
    score = verdict.score if verdict.score is not None else float(verdict.passed)
    return Outcome(
        strategy=strategy,
        item_id=item_id,
        repeat=repeat,
        correct=bool(verdict.passed),
        score=float(score),
        model=(last.response_model or last.request_model) if last is not None else "",
        input_tokens=sum(r.input_tokens for r in answered),
        output_tokens=sum(r.output_tokens for r in answered),
        cost=_cost(calls),
        eval_cost=_cost(judged),
        latency_ms=round(latency_ms, 3),
        calls=len(calls),
        reason=str(verdict.reason)[:300],
        record_ids=tuple(r.id for r in (*calls, *judged)),
    )


def _failed(
    strategy: str,
    item_id: str,
    repeat: int,
    exc: Exception,
    latency_ms: float,
    records: Sequence[CallRecord],
    *,
    what: str = "call",
) -> Outcome:
    status = getattr(exc, "status_code", None)
    detail = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {exc}"
    return Outcome(
        strategy=strategy,
        item_id=item_id,
        repeat=repeat,
        correct=None,
        cost=_cost(records),
        latency_ms=round(latency_ms, 3),
        calls=len(records),
        error=f"{what} failed: {detail}"[:500],
        record_ids=tuple(r.id for r in records),
    )


def _unpriced(
    strategy: str, item_id: str, repeat: int, exc: Exception, records: Sequence[CallRecord]
) -> Outcome:
    model = getattr(exc, "model", "") or "its model"
    return Outcome(
        strategy=strategy,
        item_id=item_id,
        repeat=repeat,
        correct=None,
        cost=_cost(records),
        calls=len(records),
        error=(
            f"no price for {model}: the run's cost cap cannot bound its calls, so none was made; "
            "price it (costlens prices show / prices.toml) or run without max_cost_usd"
        ),
        record_ids=tuple(r.id for r in records),
    )


def _with_answer(outcome: Outcome, answer: str) -> Outcome:
    from dataclasses import replace

    return replace(outcome, answer=answer)
