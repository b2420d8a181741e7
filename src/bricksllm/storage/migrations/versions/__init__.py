"""Migration scripts, applied in order by Alembic (this file is ignored by Alembic)."""
