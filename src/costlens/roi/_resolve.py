"""Fill every price a scenario left out, and say where each one came from.

Order for a prompt or switch path: the scenario, then the inference price catalogue
(`costlens.pricing`: the user's overrides file over genai-prices). For a tuned path: the scenario,
then the user's overrides file entry for the tuned model id, then the built-in fine-tuning
catalogue, then genai-prices for the tuned model id. A price that is needed and unknown is an
error naming the field to set; a fee nobody lists (hosting, storage, minimum charge) is taken as
$0 and the plan says "assumed", so a missing fee is visible, not silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from costlens._errors import ConfigError
from costlens.roi._catalogue import FineTunePrice, find_entry
from costlens.roi._money import MONEY
from costlens.roi._paths import Grader, PromptPath, TokenPrices, TunedPath
from costlens.roi._scenario import Scenario

if TYPE_CHECKING:
    from costlens.pricing import ModelPrice, PriceCatalogue

__all__ = ["PriceSource", "resolve_prices"]


_Layer = tuple[str, dict[str, Decimal | None]]


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where one price of one path came from (`scenario`, `catalogue ...`, `genai-prices ...`, `assumed`)."""

    path: str
    field: str
    value: Decimal
    source: str


class _Sources:
    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: list[PriceSource] = []

    def pick(self, field: str, candidates: list[tuple[Decimal | None, str]], hint: str | None) -> Decimal:
        """The first known candidate; else ConfigError with `hint` (or $0 'assumed' when hint is None)."""
        for value, source in candidates:
            if value is not None:
                self.rows.append(PriceSource(self.path, field, value, source))
                return value
        if hint is not None:
            raise ConfigError(f"path {self.path!r}: no {field.replace('_', ' ')} price known; {hint}")
        self.rows.append(
            PriceSource(self.path, field, Decimal(0), "assumed $0: no figure known, set it if billed")
        )
        return Decimal(0)


def resolve_prices(
    scenario: Scenario, catalogue: PriceCatalogue | None = None
) -> tuple[Scenario, tuple[PriceSource, ...]]:
    """A copy of `scenario` with every price filled in, and the source of each price."""
    if catalogue is None:
        from costlens.pricing import get_catalogue

        catalogue = get_catalogue()
    paths: list[PromptPath | TunedPath] = []
    sources: list[PriceSource] = []
    for index, path in enumerate(scenario.paths):
        track = _Sources(path.name)
        where = f"paths[{index}]"
        if isinstance(path, TunedPath):
            paths.append(_tuned(path, where, track, catalogue))
        else:
            paths.append(_prompt(path, where, track, catalogue))
        sources += track.rows
    return scenario.model_copy(update={"paths": paths}), tuple(sources)


def _lookup(catalogue: PriceCatalogue, provider: str | None, model: str) -> ModelPrice | None:
    try:
        return catalogue.resolve(provider, model)
    except LookupError:
        return None


def _per_mtok(value: Decimal) -> Decimal:
    return MONEY.scaleb(value, 6).normalize(MONEY)


def _prompt(path: PromptPath, where: str, track: _Sources, catalogue: PriceCatalogue) -> PromptPath:
    """Each price of a prompt path from the scenario, else the inference price catalogue."""
    p = path.prices
    layers: list[_Layer] = [
        ("scenario", {"input": p.input, "output": p.output, "cached_input": p.cached_input})
    ]
    if None in (p.input, p.output, p.cached_input):
        known = _lookup(catalogue, path.provider, path.model)
        if known is not None:
            layers.append(
                (f"{known.source} {catalogue.version} ({known.provider}/{known.model})", _inference(known))
            )
    hint = (
        f"set {where}.prices.input and {where}.prices.output (USD per 1M tokens), or add model "
        f"{path.model!r} to your prices overrides file"
    )

    def pick(field: str, *fallback: tuple[Decimal | None, str]) -> Decimal:
        return track.pick(
            field, [(values.get(field), label) for label, values in layers] + list(fallback), hint
        )

    price_in = pick("input")
    prices = TokenPrices(
        input=price_in,
        output=pick("output"),
        cached_input=pick("cached_input", (price_in, "= input price")),
        per_request=p.per_request,
    )
    return path.model_copy(update={"prices": prices})


def _tuned(path: TunedPath, where: str, track: _Sources, catalogue: PriceCatalogue) -> TunedPath:
    """Each price of a tuned path from the first layer that knows it: scenario, override, catalogue, genai."""
    layers = _tuned_layers(path, catalogue)

    def pick(field: str, hint: str | None, *fallback: tuple[Decimal | None, str]) -> Decimal:
        return track.pick(
            field, [(values.get(field), label) for label, values in layers] + list(fallback), hint
        )

    inference = (
        f"set {where}.prices.input and .output (the tuned model's inference prices, USD per 1M tokens), "
        f"or add a [[models]] entry for {path.model!r} to your prices overrides file"
    )
    price_in = pick("input", inference)
    prices = TokenPrices(
        input=price_in,
        output=pick("output", inference),
        cached_input=pick("cached_input", inference, (price_in, "= input price")),
        per_request=path.prices.per_request,
    )
    t = path.training
    per_mtok = t.per_mtok
    if t.dataset_tokens or t.validation_tokens:
        per_mtok = pick("training_per_mtok", f"set {where}.training.per_mtok (USD per 1M training tokens)")
    per_hour = t.per_hour
    if t.hours:
        per_hour = pick("training_per_hour", f"set {where}.training.per_hour (USD per training hour)")
    training = t.model_copy(
        update={
            "per_mtok": per_mtok,
            "per_hour": per_hour,
            "min_charge": pick("min_training_charge", None),
            "grader": _grader(t.grader, f"{where}.training.grader", track, catalogue),
        }
    )
    fees = {
        "hosting_per_hour": pick("hosting_per_hour", None),
        "storage_per_month": pick("storage_per_month", None),
    }
    return path.model_copy(update={"prices": prices, "training": training, **fees})


def _grader(grader: Grader | None, where: str, track: _Sources, catalogue: PriceCatalogue) -> Grader | None:
    """A reinforcement fine-tuning grader's inference prices: the scenario's, else the catalogue's."""
    if grader is None:
        return None
    p = grader.prices
    candidates: list[_Layer] = [("scenario", {"input": p.input, "output": p.output})]
    if p.input is None or p.output is None:
        known = _lookup(catalogue, grader.provider, grader.model)
        if known is not None:
            label = f"{known.source} {catalogue.version} ({known.provider}/{known.model}, grader)"
            candidates.append((label, _inference(known)))
    hint = (
        f"set {where}.prices.input and .output (the grader's USD per 1M tokens), or add model "
        f"{grader.model!r} to your prices overrides file"
    )
    prices = {
        key: track.pick(f"grader_{key}", [(values.get(key), label) for label, values in candidates], hint)
        for key in ("input", "output")
    }
    return grader.model_copy(update={"prices": p.model_copy(update=prices)})


def _tuned_layers(path: TunedPath, catalogue: PriceCatalogue) -> list[_Layer]:
    """The price layers of a tuned path, most specific first."""
    t = path.training
    layers: list[_Layer] = [
        (
            "scenario",
            {
                "input": path.prices.input,
                "output": path.prices.output,
                "cached_input": path.prices.cached_input,
                "training_per_mtok": t.per_mtok,
                "training_per_hour": t.per_hour,
                "min_training_charge": t.min_charge,
                "hosting_per_hour": path.hosting_per_hour,
                "storage_per_month": path.storage_per_month,
            },
        )
    ]
    found = _lookup(catalogue, path.provider, path.model)
    if found is not None and found.source.startswith("override:"):
        layers.append((found.source, {**_inference(found), **_fine_tuning(found)}))
    entry = find_entry(path.provider, path.base_model, path.price_entry)
    if entry is not None:
        layers.append((_entry_label(entry), _entry_values(entry)))
    if found is not None and not found.source.startswith("override:"):
        layers.append(
            (f"{found.source} {catalogue.version} ({found.provider}/{found.model})", _inference(found))
        )
    return layers


def _inference(price: ModelPrice) -> dict[str, Decimal | None]:
    return {
        "input": price.input_per_mtok,
        "output": price.output_per_mtok,
        "cached_input": _per_mtok(price.rates.cache_read),
    }


def _fine_tuning(price: ModelPrice) -> dict[str, Decimal | None]:
    return {
        "training_per_mtok": price.training_per_mtok,
        "training_per_hour": price.training_per_hour,
        "min_training_charge": price.min_training_charge,
        "hosting_per_hour": price.hosting_per_hour,
        "storage_per_month": price.storage_per_month,
    }


def _entry_values(entry: FineTunePrice) -> dict[str, Decimal | None]:
    return {
        "input": entry.input_per_mtok,
        "output": entry.output_per_mtok,
        "cached_input": entry.cached_input_per_mtok,
        "training_per_mtok": entry.training_per_mtok,
        "training_per_hour": entry.training_per_hour,
        "min_training_charge": entry.min_training_charge,
        "hosting_per_hour": entry.hosting_per_hour,
        "storage_per_month": entry.storage_per_month,
    }


def _entry_label(entry: FineTunePrice) -> str:
    when = entry.as_of.isoformat()
    return f"fine-tuning catalogue {entry.id} ({entry.confidence}, as of {when}, {entry.source})"
