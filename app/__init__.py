"""psychvis experiment server (FastAPI + SQLAlchemy)."""
