"""Provider ids and service tiers, normalised once so every lookup agrees.

costlens speaks its own provider ids (`openai`, `anthropic`, `azure`, `google`, ...) and accepts
any other name for OpenAI-compatible endpoints. genai-prices has its own ids and loose matching
(`"my-openai-proxy"` contains `openai`), so the few spellings that would match the wrong provider
there are mapped here first.
"""

from __future__ import annotations

from decimal import Decimal

from costlens.usage import GEO_SEPARATOR, PLAIN_GEOS

__all__ = [
    "BATCH_DISCOUNT_PROVIDERS",
    "GEO_PREMIUMS",
    "STANDARD",
    "canonical_provider",
    "genai_provider_id",
    "normalize_tier",
    "split_geo",
]

#: The service tier whose prices are the plain list prices.
STANDARD = "standard"

# Spellings used by SDKs, LiteLLM and OTel for the same provider -> the costlens id.
_ALIASES: dict[str, str] = {
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "gemini": "google",
    "google_genai": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "xai": "x-ai",
    "x_ai": "x-ai",
    "grok": "x-ai",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws-bedrock": "aws",
    "together_ai": "together",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "moonshot": "moonshotai",
    "voyage": "voyageai",
}

# Tier spellings that mean "the standard price": OpenAI reports "default"/"auto", Anthropic "standard".
# ("standard_only": what an Anthropic request sends to stay off Priority Tier)
_STANDARD_TIERS = frozenset({"", "auto", "default", "standard", "standard_only", "on_demand", "on-demand"})

#: Providers whose 50% Batch discount is documented, so it may be applied when the data has no
#: explicit batch price: OpenAI (https://platform.openai.com/docs/guides/batch), Anthropic
#: (https://docs.claude.com/en/docs/build-with-claude/batch-processing#pricing) and Azure OpenAI,
#: whose Global Batch is documented at 50% of Global Standard
#: (https://learn.microsoft.com/azure/ai-services/openai/how-to/batch). Keys are genai-prices ids.
BATCH_DISCOUNT_PROVIDERS = frozenset({"openai", "anthropic", "azure"})


#: What inference pinned to one geography costs, as a multiplier of every token price, by geography
#: and costlens provider id (`costlens.usage.with_inference_geo` names such tiers `<tier>+<geo>`).
#: Anthropic's US-only inference (`inference_geo: "us"`, Claude Opus 4.6, Sonnet 4.6 and later
#: models; older ones refuse the parameter) is billed at 1.1x input, output, cache write and cache
#: read prices (https://platform.claude.com/docs/en/build-with-claude/data-residency); per-request
#: tool fees are not multiplied.
GEO_PREMIUMS: dict[str, dict[str, Decimal]] = {"us": {"anthropic": Decimal("1.1")}}


def canonical_provider(provider: str) -> str:
    """The costlens id for a provider name: lower-cased, trimmed, with known aliases mapped."""
    key = provider.strip().lower()
    return _ALIASES.get(key, key)


def genai_provider_id(provider: str | None, known_ids: frozenset[str]) -> str | None:
    """The genai-prices provider id for a costlens id, or None to match the model across providers.

    Only exact ids are passed on: genai-prices' own fuzzy provider matching would price a
    self-hosted `"vllm-openai"` endpoint as OpenAI, which an unknown name should not imply.
    """
    if provider is None:
        return None
    return provider if provider in known_ids else None


def normalize_tier(service_tier: str | None) -> str:
    """`batch`, `flex`, `priority`, ... as given; every spelling of the default tier -> `standard`.

    A tier with an inference geography keeps it, normalised: `default+US` -> `standard+us`;
    `+global` (the plain price) is dropped."""
    if service_tier is None:
        return STANDARD
    tier = service_tier.strip().lower()
    if GEO_SEPARATOR in tier:
        base, _, geo = tier.partition(GEO_SEPARATOR)
        base, geo = normalize_tier(base), geo.strip()
        return base if geo in PLAIN_GEOS else f"{base}{GEO_SEPARATOR}{geo}"
    return STANDARD if tier in _STANDARD_TIERS else tier


def split_geo(tier: str) -> tuple[str, str | None]:
    """(tier, inference geography or None) of a normalised tier: `fast+us` -> (`fast`, `us`)."""
    base, sep, geo = tier.partition(GEO_SEPARATOR)
    return (base, geo) if sep else (tier, None)
