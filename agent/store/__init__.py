"""ClickHouse storage: client, schema migrations, and the row writers of each table."""
