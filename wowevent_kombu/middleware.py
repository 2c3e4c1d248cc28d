"""Middleware under its documented path (the code: :mod:`wowevent_kombu.worker.middleware`)."""

from __future__ import annotations

from wowevent_kombu.worker.middleware import Middleware, SkipDelivery

__all__ = ["Middleware", "SkipDelivery"]
