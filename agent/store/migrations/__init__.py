"""The schema migrations, `NNNN_name.sql`, applied in order by agent/store/migrate.py. A package
so that the SQL files install as its package data (pyproject.toml [tool.setuptools])."""
