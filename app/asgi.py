"""ASGI entry point for uvicorn/gunicorn workers: `uvicorn --factory app.asgi:app_factory`."""

from __future__ import annotations

from fastapi import FastAPI

from app.config import get_settings
from app.main import create_app


def app_factory() -> FastAPI:
    """Build the app from the environment (each worker process calls this once)."""
    return create_app(get_settings())
