"""`Step`: one stage that acts before and after every call, shaped like httpx's `Auth.auth_flow`.

    class Audit:
        def flow(self, call: Call) -> Generator[None, None, None]:
            started = time.monotonic()      # before the call: may rewrite, reroute or raise to refuse
            try:
                yield                       # the call is made here
            finally:                        # after: usage and price are on call.record already
                log.info("%s took %.3fs", call.request.model, time.monotonic() - started)

An exception raised before the `yield` refuses the call: it is recorded as blocked and the exception
reaches the caller. An exception thrown in at the `yield` is the error path (the call failed): a
step releases what it holds and lets it pass. A step whose before-half returns without yielding has
no after-half. Steps sit in named slots that run in a fixed order, `SLOTS`; the pipeline imports
none of them: the composition root (`costlens.config`) puts each in its slot.

A step may also have `is_idle() -> bool`: True while its flow would do nothing around any call (a
budget step whose engine has no budgets). A pipeline whose steps are all idle tracks calls on its
lean path (`Pipeline.lean`), which skips them; a step without `is_idle` is never skipped.

A step may also act around a call without a `Call` (`LeanStep`: the budget step does): a pipeline
whose other steps are idle then tracks its common calls on the lean path through that step
(`Pipeline.gate`), and any call it cannot take there becomes the `Call` it would have been.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from costlens.pipeline._call import Call
    from costlens.pipeline._request import Request

__all__ = ["SLOTS", "LeanStep", "Step"]

#: The slots, in the order their steps run before the call (and in reverse after it): the router
#: picks the model first, so budgets reserve the price of the model that is really called. `cap` is
#: a caller's own limit on top of the process's budgets (an experiment run's cost cap).
SLOTS: tuple[str, ...] = ("route", "budget", "cap")


@runtime_checkable
class Step(Protocol):
    def flow(self, call: Call) -> Generator[None, None, None]: ...


class LeanStep(Protocol):
    """A step that can act around a call without a `Call`, for its common case (`Pipeline.gate`).

    `admit_lean(request, tags)` is its before-half: what it returns, `admitted`, is what the call's
    `record.budgets` entries are made from (as `Call.note_budgets_later` takes it; the step may
    change `request.body`, a new dict, which the adapter then sends); False: the step does nothing
    around this call; None: it did nothing and the call must take the full path, where its `flow`
    deals with it (it refuses, reroutes, or reports what failed). It must not raise.
    `settle_lean(admitted, cost_nanousd, request)` is its after-half for a call that ended well with
    its usage, priced (None: price unknown). `admitted_flow(admitted, call)` is its after-half for
    an admitted call that became a `Call` after all (it failed, or its answer needs the full path):
    a generator, as `Step.flow` would be after its before-half.
    """

    def flow(self, call: Call) -> Generator[None, None, None]: ...

    def admit_lean(self, request: Request, tags: Mapping[str, str]) -> Any: ...

    def settle_lean(self, admitted: Any, cost_nanousd: int | None, request: Request) -> None: ...

    def admitted_flow(self, admitted: Any, call: Call) -> Generator[None, None, None]: ...
