"""optuna, imported where it is used: it is an optional dependency (``pip install curvecast[optuna]``)."""

from __future__ import annotations

from typing import Any

__all__ = ["require_optuna"]


def require_optuna(who: str) -> Any:
    """The ``optuna`` module; if it is not installed, an error naming ``who`` needs it and how to install it."""
    try:
        import optuna
    except ModuleNotFoundError as error:
        message = f"{who} needs optuna, which is not installed: pip install curvecast[optuna]"
        raise ModuleNotFoundError(message) from error
    return optuna
