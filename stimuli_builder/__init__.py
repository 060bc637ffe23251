"""Offline pipeline that builds psychvis stimulus sets (torch; never imported by app)."""
