"""Peer cost cases: every priced call that other cost libraries' own tests state, run through costlens.

The cases live in `tests/data/peer_costs/*.json` (one file per peer; see docs/peer-costs.md for how they
were gathered). Each case names its source repository, file, commit and test, the inputs (provider,
model, token counts, date) and the USD the peer expects. A case agrees when costlens gives the same
total (exact `Decimal` equality where the peer states exact decimals, relative 1e-9 otherwise) and the
same value for every part the peer asserts.

A case that does not agree must be listed in `KNOWN` below with a reason category:

* ``a``: the peer is wrong or uses stale prices (the reason cites the current price source);
* ``b``: the peer prices another date (a price change between the peer's run and costlens' data);
* ``c``: costlens lacks a capability that is being built (1-hour cache writes, tool fees, audio,
  Perplexity citations): ``xfail(strict=True)``, so the case fails loudly once it agrees: move it out;
* ``d``: the model is unknown to costlens: the test asserts the cost is unknown (None), never $0;
* ``e``: costlens lacks the capability altogether (per-second audio pricing, image-token prices,
  per-provider bucket pricing): recorded, ``xfail(strict=True)`` like ``c``.

For ``a`` and ``b`` the test asserts that costlens gives a known price and still disagrees, so a case
that starts agreeing (data update, patch file) fails and is moved out of the table.

`python -m tests.test_peer_costs` prints the summary table of docs/peer-costs.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from costlens import Usage
from costlens.pricing import cost

CASES_DIR = Path(__file__).parent / "data" / "peer_costs"
SOURCES = ("genai_prices", "litellm", "helicone", "tokencost")
REL = Decimal("1e-9")

# Peer usage keys that costlens' Usage can take, by costlens field name (used only when the field exists,
# so cases flip as the fields land). genai-prices' `input_audio_tokens` includes cached audio; costlens'
# `input_audio_tokens` is uncached audio only, so cached audio is subtracted.
_EXTRA_FIELDS = {
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "output_citation_tokens": "citation_tokens",
    "web_searches": "web_search_requests",
}

_GPT35_SRC = "https://platform.openai.com/docs/pricing (gpt-3.5-turbo-0125: $0.50 in / $1.50 out per 1M)"
_ANTH_LONG = (
    "https://docs.claude.com/en/docs/about-claude/pricing#long-context-pricing: above 200K input tokens "
    "the long-context rates apply to every token of the request, cache reads and writes included, and "
    "only when the input EXCEEDS 200K"
)
_GOOGLE_TIER = (
    "https://cloud.google.com/vertex-ai/generative-ai/pricing: the >200K rates (cached input included) "
    "apply by the prompt's total size"
)

#: Known disagreements: case id -> (category, reason). Every entry is explained in docs/peer-costs.md.
KNOWN: dict[str, tuple[str, str]] = {
    # ---- (a) the peer is wrong or stale -------------------------------------------------------------
    "litellm:test_handle_realtime_stream_cost_calculation": (
        "a",
        f"the test's comment prices gpt-3.5-turbo at $1.50/$2.00 per 1M (2023); {_GPT35_SRC}",
    ),
    **{
        f"tokencost:test_calculate_prompt_cost[MESSAGES-{m}]": (
            "a",
            f"stale gpt-3.5-turbo input price; {_GPT35_SRC}",
        )
        for m in ("gpt-3.5-turbo",)
    },
    **{
        f"tokencost:test_calculate_completion_cost[STRING-{m}]": (
            "a",
            f"stale gpt-3.5-turbo output price; {_GPT35_SRC}",
        )
        for m in ("gpt-3.5-turbo",)
    },
    "tokencost:test_calculate_cost_by_tokens[10-gpt-3.5-turbo-input]": (
        "a",
        f"stale input price; {_GPT35_SRC}",
    ),
    "helicone:threshold-based pricing: should use higher tier pricing for Claude Sonnet 4 over 200K tokens": (
        "a",
        f"Helicone prices cache reads/writes at the base tier above 200K; {_ANTH_LONG} (Helicone's own "
        "later anthropic-cache-tier.test.ts agrees with costlens)",
    ),
    "helicone:threshold-based pricing: should handle exact threshold boundary correctly": (
        "a",
        f"Helicone applies the long-context tier at exactly 200,000 tokens; {_ANTH_LONG}",
    ),
    "helicone:threshold-based pricing: should handle Vertex Gemini 3 Pro with threshold pricing": (
        "a",
        f"Helicone tiers Vertex cached input by the cached tokens alone; {_GOOGLE_TIER}",
    ),
}

# ---- (a) continued: LiteLLM's gpt-4o-transcribe audio rate ------------------------------------------
_TRANSCRIBE = (
    "LiteLLM bills gpt-4o-transcribe audio input at the $2.50/1M text rate; OpenAI lists audio input at "
    "$6.00/1M (https://platform.openai.com/docs/pricing, Transcription: gpt-4o-transcribe)"
)
KNOWN.update(
    {
        "litellm:test_transcription_cost_uses_token_pricing": ("a", _TRANSCRIBE),
        "litellm:test_realtime_transcription_token_billed_fallback": ("a", _TRANSCRIBE),
    }
)

# ---- (b) the peer's price data is another version / date --------------------------------------------
_GP_DATA = (
    "the peer test ran on genai-prices' data at commit 47df840 (2026-08-21); costlens uses the data "
    "bundled in genai-prices 0.2.3, which changed this price since"
)
KNOWN.update(
    {
        f"genai-prices:{t}": ("b", _GP_DATA)
        for t in (
            "test_gpt_5_6_cache_write_price[gpt-5.6-sol-expected_input_price0]",
            "test_gpt_5_6_cache_write_price_context_boundary[gpt-5.6-sol-short_write_rate0-long_write_rate0]",
            "test_gpt_5_6_cache_write_price_context_boundary[gpt-5.6-sol-short_write_rate0-long_write_rate0]#2",
            "test_gpt_5_6_long_context_mixed_price[gpt-5.6-sol-input_rate0-cache_write_rate0-cache_read_rate0-output_rate0]",
            "test_aws_gpt_5_6_context_boundary[openai.gpt-5.6-sol-short_input_rate0-long_input_rate0]",
            "test_aws_gpt_5_6_context_boundary[openai.gpt-5.6-sol-short_input_rate0-long_input_rate0]#2",
            "test_openai_cache_write_tokens[chat-usage_data0]",
            "test_openrouter_deepseek_v32_price",
            "test_fireworks_serverless_prices[accounts/fireworks/routers/kimi-k3-us-input_rate9-cache_read_rate9-output_rate9]",
            "test_fireworks_serverless_prices[accounts/fireworks/models/gpt-oss-120b-input_rate10-cache_read_rate10-output_rate10]",
            "test_openrouter_kimi_k27_code_price",
            "test_openrouter_kimi_k27_code_dated_price",
            "test_openrouter_glm_51_dated_price",
            "test_openrouter_modern_dated_aliases_price#2",
        )
    }
)

# ---- (c) capability being built: audio, tool fees ---------------------------------------------------
KNOWN.update(
    {
        "genai-prices:test_google_caching": (
            "c",
            "10 output audio tokens: gemini-2.5-flash has no output-audio price in the data, so costlens "
            "gives cost unknown where genai-prices bills them at the output rate",
        ),
        "helicone:should handle web search for Grok": (
            "c",
            "web-search fee: x-ai/grok-3 has no web_search price",
        ),
        "helicone:should calculate cost with web search": (
            "c",
            "web-search fee: perplexity/sonar has no web_search price",
        ),
    }
)

# ---- (d) model unknown to costlens: cost must be None, never $0 -------------------------------------
KNOWN.update(
    dict.fromkeys(
        (
            "litellm:test_cost_per_token_tiered_only_model_bills_at_tier_rate",
            "litellm:test_github_copilot_mai_code_1_flash_pricing[mai-code-1-flash]",
            "litellm:test_github_copilot_mai_code_1_flash_pricing[mai-code-1-flash-internal]",
            "litellm:test_transcription_token_pricing_is_provider_aware",
            "litellm:test_completion_cost_prices_together_cached_tokens_at_cache_read_rate",
            "litellm:test_completion_cost_together_unmapped_model_still_uses_size_bucket",
            "litellm:test_completion_cost_together_metadata_only_model_still_uses_size_bucket",
            "tokencost:test_calculate_cost_by_tokens[10-ai21.j2-mid-v1-input]",
        ),
        ("d", "no price for this model in costlens' catalogue"),
    )
)
KNOWN.update(
    dict.fromkeys(
        (
            "litellm:test_transcription_cost_falls_back_to_duration",
            "litellm:test_vertex_chirp_3_transcription_cost_from_duration",
            "litellm:test_realtime_transcription_duration_cost",
            "litellm:test_realtime_transcription_duration_cost_resolves_model_from_litellm_name",
        ),
        ("d", "no price for this model, and it is priced per second of audio, which costlens cannot express"),
    )
)

# ---- (e) capability costlens lacks altogether -------------------------------------------------------
_IMAGE = "image/video token prices: costlens' Usage has no image or video token counts"
KNOWN.update(
    {
        f"genai-prices:{t}": ("e", _IMAGE)
        for t in (
            "test_google_image_models_price_unclassified_output_as_text[gemini-2.5-flash-image-2.5-30]",
            "test_google_image_models_price_unclassified_output_as_text[gemini-3-pro-image-12-120]",
            "test_google_image_models_price_unclassified_output_as_text[gemini-3-pro-image-preview-12-120]",
            "test_google_image_models_price_unclassified_output_as_text[gemini-3.1-flash-image-3-60]",
            "test_google_image_models_price_unclassified_output_as_text[gemini-3.1-flash-image-preview-3-60]",
            "test_openai_image_model_prices_overlapping_input_modalities_and_cache",
            "test_openai_realtime_prices_image_and_cached_image_input",
            "test_new_google_multimodal_model_prices[gemini-3.1-flash-lite-image-usage0-expected_input0-expected_output0]",
            "test_new_google_multimodal_model_prices[gemini-3.1-flash-live-preview-usage1-expected_input1-expected_output1]",
            "test_new_google_multimodal_model_prices[gemini-embedding-2-usage2-expected_input2-expected_output2]",
            "test_new_google_multimodal_model_prices[gemini-omni-flash-preview-usage3-expected_input3-expected_output3]",
        )
    }
)
KNOWN.update(
    {
        "litellm:test_handle_realtime_stream_cost_calculation_bills_nested_reasoning_tokens_once": (
            "e",
            _IMAGE,
        ),
        "helicone:should calculate correct image output pricing for Gemini 3 Pro Image": ("e", _IMAGE),
        "genai-prices:test_complex_usage#5": (
            "e",
            "cached audio ($0.10/1M on gemini-2.5-flash): costlens' Usage has no cached-audio count",
        ),
        "genai-prices:test_complex_usage#6": (
            "e",
            "cached audio ($0.10/1M on gemini-2.5-flash): costlens' Usage has no cached-audio count",
        ),
        "helicone:should calculate cost correctly for sonar": (
            "e",
            "Perplexity's request fee depends on search_context_size (low/medium/high: $5/$8/$12 per 1K for "
            "sonar, https://docs.perplexity.ai/getting-started/pricing); Helicone uses low, costlens' data "
            "one fixed fee, and costlens has no input to pick the tier",
        ),
        "helicone:should calculate cost correctly for sonar-pro": (
            "e",
            "Perplexity's request fee depends on search_context_size ($6/$10/$14 per 1K for sonar-pro); "
            "Helicone uses low, costlens' data one fixed fee, and costlens has no input to pick the tier",
        ),
    }
)


@cache
def load_cases() -> tuple[dict[str, Any], ...]:
    cases: list[dict[str, Any]] = []
    for name in SOURCES:
        data = json.loads((CASES_DIR / f"{name}.json").read_text())
        for case in data["cases"]:
            cases.append({"file_key": name, **case})
    return tuple(cases)


def _usage_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Usage)}


def to_usage(case: dict[str, Any]) -> Usage:
    """The costlens Usage of a case, with every finer field costlens' Usage already has."""
    values: dict[str, int] = dict(case["usage"])
    extra = case.get("extra_usage", {})
    fields = _usage_fields()
    for peer_key, field in _EXTRA_FIELDS.items():
        if peer_key in extra and field in fields:
            amount = int(extra[peer_key])
            if peer_key == "input_audio_tokens":
                amount -= int(extra.get("cache_audio_read_tokens", 0))
            values[field] = values.get(field, 0) + amount
    return Usage(**values)


def missing_capabilities(case: dict[str, Any]) -> list[str]:
    """Peer usage keys that costlens' Usage cannot carry yet."""
    fields = _usage_fields()
    return sorted(
        k
        for k in case.get("extra_usage", {})
        if _EXTRA_FIELDS.get(k) not in fields and k != "cache_audio_read_tokens"
    )


def price(case: dict[str, Any]) -> tuple[Decimal | None, dict[str, Decimal]]:
    """costlens' total and parts for a case (a case of N requests adds N - 1 more request fees)."""
    result = cost(
        to_usage(case),
        provider=case["provider"],
        model=case["model"],
        at=datetime.fromisoformat(case["at"]),
        service_tier=case.get("service_tier"),
    )
    if result.total is None:
        return None, {}
    parts = dict(result.parts)
    requests = int(case.get("requests", 1))
    fee = parts.get("request", Decimal(0))
    total = result.total + (requests - 1) * fee
    if requests != 1 and fee:
        parts["request"] = requests * fee
    return total, parts


def _close(actual: Decimal, expected: Decimal, exact: bool) -> bool:
    if exact or expected == 0:
        return actual == expected
    return abs(actual - expected) <= REL * abs(expected)


def agrees(case: dict[str, Any]) -> tuple[bool, str]:
    """Whether costlens agrees with the peer on the total and every asserted part, and why not."""
    total, parts = price(case)
    expected = case.get("expected_usd")
    exact = bool(case.get("exact"))
    if expected is None and not case.get("expected_parts"):
        return total is None, f"peer: unknown; costlens: {total}"
    if total is None:
        return False, f"peer: {expected}; costlens: unknown"
    if expected is not None and not _close(total, Decimal(expected), exact):
        return False, f"total: peer {expected}, costlens {total}"
    for key, value in case.get("expected_parts", {}).items():
        if key not in parts or not _close(parts[key], Decimal(value), exact):
            return False, f"part {key}: peer {value}, costlens {parts.get(key)}"
    return True, ""


def _params() -> list[Any]:
    params = []
    for case in load_cases():
        marks = []
        category = KNOWN.get(case["id"], ("", ""))[0]
        if category in ("c", "e"):
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[case["id"]][1]))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def test_case_ids_are_unique_and_known_entries_exist() -> None:
    ids = [case["id"] for case in load_cases()]
    assert len(ids) == len(set(ids))
    assert set(KNOWN) <= set(ids), sorted(set(KNOWN) - set(ids))
    assert {category for category, _ in KNOWN.values()} <= set("abcde")


@pytest.mark.parametrize("case", _params())
def test_peer_case(case: dict[str, Any]) -> None:
    category, reason = KNOWN.get(case["id"], ("", ""))
    ok, why = agrees(case)
    if category == "d":
        total, _ = price(case)
        result = cost(to_usage(case), provider=case["provider"], model=case["model"])
        assert total is None and result.total is None and not result.known, (
            f"{case['id']}: listed as unknown to costlens but priced at {total}; move it out of KNOWN"
        )
    elif category in ("a", "b"):
        total, _ = price(case)
        assert total is not None, f"{case['id']}: costlens lost its price"
        assert not ok, f"{case['id']}: now agrees with the peer; remove it from KNOWN ({reason})"
    else:  # agreement expected (xfail for c / e)
        assert ok, f"{case['id']} ({case['source']} {case['file']}::{case['test']}): {why}"


def summary() -> list[dict[str, Any]]:
    """Per source: cases, agreements, disagreements by category, and unexplained ones."""
    rows: dict[str, Counter[str]] = {}
    for case in load_cases():
        row = rows.setdefault(case["source"], Counter())
        row["cases"] += 1
        category = KNOWN.get(case["id"], ("", ""))[0]
        ok, _ = agrees(case)
        if category == "d":
            row["d"] += 1
        elif ok:
            row["agree"] += 1
            if category:
                row["moved"] += 1  # listed but agreeing: the table needs updating
        elif category:
            row[category] += 1
        else:
            row["unexplained"] += 1
    return [{"source": source, **counts} for source, counts in rows.items()]


def main() -> int:
    columns = ("cases", "agree", "a", "b", "c", "d", "e", "unexplained", "moved")
    rows = summary()
    print("| source | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    totals: Counter[str] = Counter()
    for row in rows:
        totals.update({k: row.get(k, 0) for k in columns})
        print(f"| {row['source']} | " + " | ".join(str(row.get(k, 0)) for k in columns) + " |")
    print("| **all** | " + " | ".join(str(totals[k]) for k in columns) + " |")
    if "-v" in sys.argv:
        for case in load_cases():
            ok, why = agrees(case)
            mark = KNOWN.get(case["id"], ("", ""))[0] or ("ok" if ok else "??")
            if not ok or mark != "ok":
                print(f"{mark:3} {case['id']}: {why} {missing_capabilities(case) or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
