"""``python -m skyhooks``: the same as the ``skyhooks`` console script."""

from __future__ import annotations

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
