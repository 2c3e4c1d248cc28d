"""The console's pages (placeholder until the pages land)."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["mount_console"]


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and assets to ``app``."""
