"""Grafana dashboards as code over the ClickHouse tables, their provisioning files, and the
command-side helpers that export, check and publish them."""
