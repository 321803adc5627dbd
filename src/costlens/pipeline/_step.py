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
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from costlens.pipeline._call import Call

__all__ = ["SLOTS", "Step"]

#: The slots, in the order their steps run before the call (and in reverse after it): the router
#: picks the model first, so budgets reserve the price of the model that is really called. `cap` is
#: a caller's own limit on top of the process's budgets (an experiment run's cost cap).
SLOTS: tuple[str, ...] = ("route", "budget", "cap")


@runtime_checkable
class Step(Protocol):
    def flow(self, call: Call) -> Generator[None, None, None]: ...
