"""Where costlens keeps its files: the one place that decides.

Two folders, both overridden by `COSTLENS_HOME` (then one folder holds everything):

- the **config folder** holds files a person edits: `prices.toml` (price overrides) and `budgets.toml`
  (budgets); default: the platform's user config folder (`~/.config/costlens` on Linux);
- the **data folder** holds what costlens writes: the call store `costlens.db`, the budget ledger
  `budgets.db` and the spool; default: the platform's user data folder (`~/.local/share/costlens`).

Environment variables name single files and win over both: `COSTLENS_PRICES`, `COSTLENS_BUDGETS`,
`COSTLENS_STORE`, `COSTLENS_LEDGER`. Nothing here creates a folder or reads a file's content: callers
create what they write, when they write it. Importing this module costs nothing (`platformdirs` is
imported on first use).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["budgets_file", "config_dir", "data_dir", "prices_file", "spool_dir"]


def _home() -> Path | None:
    home = os.environ.get("COSTLENS_HOME")
    return Path(home).expanduser().absolute() if home else None


def data_dir() -> Path:
    """`COSTLENS_HOME`, else the platform's user data folder (not created here)."""
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir("costlens"))


def config_dir() -> Path:
    """`COSTLENS_HOME`, else the platform's user config folder (not created here)."""
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir("costlens"))


def spool_dir() -> Path:
    """Where records go while the store cannot take them."""
    return data_dir() / "spool"


def _config_file(name: str, env: str) -> tuple[Path, bool]:
    """(path, named explicitly by `env`). Before 0.2 `budgets.toml` lived in the data folder: a file
    found only there is still used, so upgrading moves nothing."""
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit).expanduser().absolute(), True
    path = config_dir() / name
    if not path.exists():
        legacy = data_dir() / name
        if legacy.is_file():
            return legacy, False
    return path, False


def prices_file() -> tuple[Path, bool]:
    """The price overrides file (`$COSTLENS_PRICES`, else `prices.toml` in the config folder)."""
    return _config_file("prices.toml", "COSTLENS_PRICES")


def budgets_file() -> tuple[Path, bool]:
    """The budgets file (`$COSTLENS_BUDGETS`, else `budgets.toml` in the config folder)."""
    return _config_file("budgets.toml", "COSTLENS_BUDGETS")
