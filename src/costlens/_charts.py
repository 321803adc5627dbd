"""matplotlib on demand: charts are an optional extra, so the import happens only when one is drawn."""

from __future__ import annotations

from typing import Any

from costlens._errors import ConfigError

__all__ = ["pyplot"]


def pyplot() -> Any:
    """Return `matplotlib.pyplot` on the file-only Agg backend, or say which extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("charts need matplotlib: pip install 'llm-costlens[plot]'") from None
    # Agg: charts are written to files, and a GUI backend would fail on a headless machine.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
