"""Offline pipeline that builds psychvis stimulus sets (torch; never imported by app)."""

__version__ = "0.1.0"
