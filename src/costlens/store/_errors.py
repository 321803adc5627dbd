"""Why a store cannot be opened: it does not exist (readers never create one), or its file is unusable."""

from __future__ import annotations

from costlens._errors import CostlensError

__all__ = ["StoreNotFound", "StoreUnusable"]


class StoreNotFound(CostlensError):
    """A store opened for reading (`open_store(url, create=False)`) does not exist; nothing was created."""

    def __init__(self, url: str, where: str) -> None:
        self.url = url
        self.where = where
        super().__init__(
            f"no store at {where} (looked for {url}): nothing has been recorded there yet. Check --store / "
            "$COSTLENS_STORE, or create it by recording calls (costlens.track) or with `costlens import`"
        )


class StoreUnusable(CostlensError):
    """The store's file cannot be used: `where` names it, `problem` says what is wrong with it."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"cannot use the store {where}: {problem}")
