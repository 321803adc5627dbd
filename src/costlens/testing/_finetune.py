"""The fake's OpenAI fine-tuning API: file uploads and jobs that finish deterministically.

Endpoints (OpenAI's shapes, so the real `openai` SDK drives them): `POST /v1/files` (multipart,
`purpose=fine-tune`), `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `POST /v1/fine_tuning/jobs`,
`GET /v1/fine_tuning/jobs`, `GET /v1/fine_tuning/jobs/{id}`, `POST /v1/fine_tuning/jobs/{id}/cancel`,
`GET /v1/fine_tuning/jobs/{id}/events` (newest first, as OpenAI lists them).

A job is `queued` when created and moves one stage per retrieve: `running`, ..., then its outcome
(`succeeded` by default) on the N-th retrieve (N = `retrieves`, default 2). No clock, no threads:
a client that polls with interval 0 sees the whole life of a job in N + 1 requests.

A succeeded job reports `fine_tuned_model` = `ft:{model}:costlens-fake:{suffix}:{8 hex}` and
`trained_tokens` = n_epochs × Σ over the file's lines of (ceil(chars / 4) + 1), where chars counts
every string in the line's training fields (`messages`, else `prompt` + `completion`, else `text`)
except `role` / `type` markers: the fake's usual token rule (see `FakeUsage`), not a tokenizer.
n_epochs is the job's `hyperparameters.n_epochs` (or `method.supervised.hyperparameters.n_epochs`);
"auto" or absent picks OpenAI's documented default (the cookbook's rule: 3, raised so that
n_examples × epochs ≥ 100 up to 25, lowered so that it is ≤ 25,000 down to 1).

Outcomes: `fake.fine_tuning.script(...)` queues the next jobs' behaviour (FIFO), or the create request
carries headers `x-fake-job-outcome: succeeded|failed|cancelled`, `x-fake-job-retrieves: N`,
`x-fake-trained-tokens: N` (headers win). A failed job has `error = {code, message, param}` and
`trained_tokens` null unless scripted. A training file with a line that is not a JSON object fails
its job with code `invalid_training_file`, naming the line.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from costlens.testing._config import derive_input_tokens

__all__ = ["FakeFineTuning", "JobScript", "default_epochs", "trained_tokens_for"]

Outcome = Literal["succeeded", "failed", "cancelled"]
_OUTCOMES = ("succeeded", "failed", "cancelled")
_TERMINAL = frozenset(_OUTCOMES)
_PREFIXES = ("/v1/", "/openai/v1/")
_JOB_PATH = re.compile(r"fine_tuning/jobs/([^/]+)(?:/(events|cancel))?")
_FILE_PATH = re.compile(r"files/([^/]+)(?:/(content))?")


def default_epochs(n_examples: int) -> int:
    """OpenAI's default epoch count for `n_examples` (the fine-tuning data-prep cookbook's rule)."""
    if n_examples <= 0:
        return 1
    epochs = 3
    if n_examples * epochs < 100:
        epochs = min(25, 100 // n_examples)
    elif n_examples * epochs > 25_000:
        epochs = max(1, 25_000 // n_examples)
    return epochs


@dataclass(frozen=True, slots=True)
class JobScript:
    """How one job ends: `outcome` on the `retrieves`-th retrieve, with these counts."""

    outcome: Outcome = "succeeded"
    retrieves: int = 2
    trained_tokens: int | None = None
    error_code: str = "training_failed"
    error_message: str = "costlens fake: the job was scripted to fail"

    def __post_init__(self) -> None:
        if self.outcome not in _OUTCOMES:
            raise ValueError(f"JobScript.outcome must be one of {_OUTCOMES}, got {self.outcome!r}")
        if self.retrieves < 1:
            raise ValueError(f"JobScript.retrieves must be at least 1, got {self.retrieves}")


@dataclass(slots=True)
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass(slots=True)
class _Job:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    n_epochs: int
    seed: int
    created_at: int
    script: JobScript
    tokens: int | None  # the training file's tokens per epoch; None when the file is invalid
    bad_line: str | None
    status: str = "queued"
    retrieved: int = 0
    finished_at: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None

    def body(self) -> dict[str, Any]:
        hyper = {"n_epochs": self.n_epochs, "batch_size": 1, "learning_rate_multiplier": 1.8}
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": hyper,
            "model": self.model,
            "organization_id": "org-costlens-fake",
            "result_files": [f"file-result-{self.id[6:]}"] if self.status == "succeeded" else [],
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "estimated_finish": None,
            "integrations": [],
            "metadata": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "user_provided_suffix": self.suffix,
        }


Answer = tuple[int, dict[str, Any]]


class FakeFineTuning:
    """The state of the fake's files and fine-tuning jobs (one per `FakeProvider`)."""

    def __init__(self, created: Callable[[], int]) -> None:
        self._created = created
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._jobs: dict[str, _Job] = {}
        self._scripts: collections.deque[JobScript] = collections.deque()
        self._seq = 0

    # -- configuration ---------------------------------------------------------------------------------

    def script(
        self,
        outcome: Outcome = "succeeded",
        *,
        retrieves: int = 2,
        trained_tokens: int | None = None,
        error_code: str = "training_failed",
        error_message: str = "costlens fake: the job was scripted to fail",
        times: int = 1,
    ) -> None:
        """Queue how the next created job(s) end (FIFO); unscripted jobs succeed on the 2nd retrieve."""
        entry = JobScript(outcome, retrieves, trained_tokens, error_code, error_message)
        with self._lock:
            self._scripts.extend([entry] * times)

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._jobs.clear()
            self._scripts.clear()

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's current body, without advancing it (for assertions)."""
        with self._lock:
            return self._jobs[job_id].body()

    @property
    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [j.body() for j in self._jobs.values()]

    # -- HTTP ------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
               raw: bytes) -> Answer | None:  # fmt: skip
        """The (status, JSON body) for a files / fine-tuning request; None when `path` is not one."""
        rest = next((path[len(p) :] for p in _PREFIXES if path.startswith(p)), None)
        if rest is None:
            return None
        rest = rest.rstrip("/")
        if rest == "files":
            if method == "POST":
                return self._upload(headers, raw)
            return 200, {
                "object": "list",
                "data": [f.body() for f in self._files.values()],
                "has_more": False,
            }
        if rest == "fine_tuning/jobs":
            if method == "POST":
                return self._create(headers, raw)
            return self._list(query)
        found = _FILE_PATH.fullmatch(rest)
        if found and method == "GET":
            return self._file(found[1], found[2] == "content")
        found = _JOB_PATH.fullmatch(rest)
        if found is None:
            return None
        job_id, action = found[1], found[2]
        if action == "cancel" and method == "POST":
            return self._cancel(job_id)
        if action == "events" and method == "GET":
            return self._events(job_id, query)
        if action is None and method == "GET":
            return self._retrieve(job_id)
        return None

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return prefix + hashlib.sha256(f"{prefix}{self._seq}".encode()).hexdigest()[:24]

    def _upload(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return _error(400, "Files must be uploaded as multipart/form-data.", "file")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields: dict[str, bytes] = {}
        filename = "upload.jsonl"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
                if name == "file":
                    filename = str(part.get_filename() or filename)
        if "file" not in fields:
            return _error(400, "Missing required parameter: 'file'.", "file")
        purpose = fields.get("purpose", b"").decode()
        if not purpose:
            return _error(400, "Missing required parameter: 'purpose'.", "purpose")
        with self._lock:
            file = _File(self._next_id("file-"), filename, purpose, fields["file"], self._created())
            self._files[file.id] = file
        return 200, file.body()

    def _file(self, file_id: str, content: bool) -> Answer:
        with self._lock:
            file = self._files.get(file_id)
        if file is None:
            return _error(404, f"No such File object: {file_id}", "id", code="resource_not_found")
        if content:
            return 200, {"content": file.content.decode("utf-8", "replace")}
        return 200, file.body()

    def _create(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.", None)
        model, training_file = body.get("model"), body.get("training_file")
        if not isinstance(model, str) or not model:
            return _error(400, "Missing required parameter: 'model'.", "model")
        with self._lock:
            file = self._files.get(training_file) if isinstance(training_file, str) else None
        if file is None:
            return _error(400, f"invalid training_file: {training_file}", "training_file")
        if file.purpose != "fine-tune":
            return _error(
                400, f"File {file.id} has purpose {file.purpose!r}, not 'fine-tune'.", "training_file"
            )
        try:
            script = self._script(headers)
        except ValueError as exc:
            return _error(400, f"costlens fake: {exc}", None)
        tokens, examples, bad_line = _file_tokens(file.content)
        requested = _requested_epochs(body)
        suffix = body.get("suffix") if isinstance(body.get("suffix"), str) else None
        seed = body.get("seed")
        validation = body.get("validation_file")
        with self._lock:
            job = _Job(
                id=self._next_id("ftjob-"),
                model=model,
                training_file=file.id,
                validation_file=validation if isinstance(validation, str) else None,
                suffix=suffix,
                n_epochs=requested if requested is not None else default_epochs(examples),
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 42,
                created_at=self._created(),
                script=script,
                tokens=tokens,
                bad_line=bad_line,
            )
            self._event(job, f"Created fine-tuning job: {job.id}")
            self._event(job, f"Validating training file: {file.id}")
            self._jobs[job.id] = job
            return 200, job.body()

    def _script(self, headers: Mapping[str, str]) -> JobScript:
        with self._lock:
            script = self._scripts.popleft() if self._scripts else JobScript()
        outcome = headers.get("x-fake-job-outcome")
        retrieves = headers.get("x-fake-job-retrieves")
        trained = headers.get("x-fake-trained-tokens")
        try:
            return JobScript(
                outcome=outcome if outcome is not None else script.outcome,  # type: ignore[arg-type]
                retrieves=int(retrieves) if retrieves is not None else script.retrieves,
                trained_tokens=int(trained) if trained is not None else script.trained_tokens,
                error_code=script.error_code,
                error_message=script.error_message,
            )
        except ValueError as exc:
            raise ValueError(f"bad x-fake-job-* header: {exc}") from None

    def _list(self, query: Mapping[str, str]) -> Answer:
        with self._lock:
            jobs = [j.body() for j in reversed(self._jobs.values())]
        limit = _limit(query)
        return 200, {"object": "list", "data": jobs[:limit], "has_more": len(jobs) > limit}

    def _retrieve(self, job_id: str) -> Answer:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return _not_found(job_id)
            if job.status not in _TERMINAL:
                job.retrieved += 1
                self._advance(job)
            return 200, job.body()

    def _cancel(self, job_id: str) -> Answer:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return _not_found(job_id)
            if job.status in _TERMINAL:
                return _error(400, f"Job {job_id} has already {job.status}.", None)
            job.status = "cancelled"
            job.finished_at = self._created()
            self._event(job, "Fine-tuning job cancelled")
            return 200, job.body()

    def _events(self, job_id: str, query: Mapping[str, str]) -> Answer:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return _not_found(job_id)
            events = list(reversed(job.events))
        after = query.get("after")
        if after:
            ids = [e["id"] for e in events]
            events = events[ids.index(after) + 1 :] if after in ids else []
        limit = _limit(query)
        return 200, {"object": "list", "data": events[:limit], "has_more": len(events) > limit}

    # -- the job's life (called with the lock held) ------------------------------------------------------

    def _advance(self, job: _Job) -> None:
        script = job.script
        if job.retrieved < script.retrieves:
            if job.status == "queued":
                job.status = "running"
                self._event(job, "Fine-tuning job started")
            else:
                self._event(job, f"Step {job.retrieved}: training loss=0.{job.retrieved:04d}", kind="metrics")
            return
        job.finished_at = self._created()
        if job.bad_line is not None:
            job.status = "failed"
            job.error = {"code": "invalid_training_file", "message": job.bad_line, "param": "training_file"}
            job.trained_tokens = script.trained_tokens
            self._event(job, f"Training file validation failed: {job.bad_line}", level="error")
            return
        job.status = script.outcome
        if script.outcome == "succeeded":
            tokens = (job.tokens or 0) * job.n_epochs
            job.trained_tokens = script.trained_tokens if script.trained_tokens is not None else tokens
            short = hashlib.sha256(job.id.encode()).hexdigest()[:8]
            job.fine_tuned_model = f"ft:{job.model}:costlens-fake:{job.suffix or ''}:{short}"
            self._event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
            self._event(job, "The job has successfully completed")
        elif script.outcome == "failed":
            job.trained_tokens = script.trained_tokens
            job.error = {"code": script.error_code, "message": script.error_message, "param": None}
            self._event(job, f"Fine-tuning job failed: {script.error_message}", level="error")
        else:
            job.trained_tokens = script.trained_tokens
            self._event(job, "Fine-tuning job cancelled")

    def _event(self, job: _Job, message: str, *, level: str = "info", kind: str = "message") -> None:
        job.events.append(
            {
                "id": f"ftevent-{job.id[6:18]}{len(job.events):04d}",
                "object": "fine_tuning.job.event",
                "created_at": self._created(),
                "level": level,
                "message": message,
                "data": {},
                "type": kind,
            }
        )


def _file_tokens(content: bytes) -> tuple[int | None, int, str | None]:
    """(tokens per epoch, examples, the first bad line's description or None)."""
    tokens = examples = 0
    for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return None, examples, f"line {number} is not valid JSON"
        if not isinstance(row, dict):
            return None, examples, f"line {number} is not a JSON object"
        keys: tuple[str, ...] = (
            ("messages",) if "messages" in row else ("prompt", "completion") if "prompt" in row else ("text",)
        )
        tokens += derive_input_tokens(row, keys)
        examples += 1
    return tokens, examples, None


def _requested_epochs(body: Mapping[str, Any]) -> int | None:
    candidates: list[Any] = [body.get("hyperparameters")]
    method = body.get("method")
    if isinstance(method, Mapping):
        supervised = method.get("supervised")
        if isinstance(supervised, Mapping):
            candidates.append(supervised.get("hyperparameters"))
    for hyper in candidates:
        if isinstance(hyper, Mapping):
            value = hyper.get("n_epochs")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _limit(query: Mapping[str, str]) -> int:
    try:
        return max(1, int(query.get("limit", "20")))
    except ValueError:
        return 20


def _error(status: int, message: str, param: str | None, *, code: str | None = None) -> Answer:
    kind = "invalid_request_error"
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _not_found(job_id: str) -> Answer:
    return _error(404, f"Could not find fine-tune: {job_id}", "fine_tune_id", code="fine_tune_not_found")


def trained_tokens_for(content: bytes | str, n_epochs: int | None = None) -> int:
    """The `trained_tokens` a succeeded fake job reports for a training file (for test expectations)."""
    data = content.encode() if isinstance(content, str) else content
    tokens, examples, bad = _file_tokens(data)
    if tokens is None:
        raise ValueError(bad)
    return tokens * (n_epochs if n_epochs is not None else default_epochs(examples))
