"""A call's life: `Request` in, `Call` through the steps, `CallRecord` out to the sinks.

    pipeline = Pipeline({"budget": BudgetStep(engine)}, sinks=[records.append])
    call = pipeline.start(Request.of("openai", "chat", {"model": "gpt-4o-mini", "messages": [...]}))
    ...                                  # make the call with call.request.body
    call.usage = Usage(input_tokens=12, output_tokens=30)
    pipeline.finish(call)                # price, settle, record

The SDK wrappers (`costlens.instrument`) and the gateway both feed a pipeline; steps (router,
budgets) plug into its named slots; `costlens.config` builds the process's pipeline.
"""

from __future__ import annotations

from costlens.pipeline._call import Call, OutputMissing
from costlens.pipeline._estimate import DEFAULT_MAX_OUTPUT, Estimate, count_input, estimate
from costlens.pipeline._pipeline import Pipeline, Sink
from costlens.pipeline._request import Request
from costlens.pipeline._step import SLOTS, Step

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "SLOTS",
    "Call",
    "Estimate",
    "OutputMissing",
    "Pipeline",
    "Request",
    "Sink",
    "Step",
    "count_input",
    "estimate",
]
