"""Alembic migrations of the library database (see storage/schema.py, which runs them)."""
