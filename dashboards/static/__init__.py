"""The live view's and the report's scripts and styles, with the vendored uPlot (vendor.json:
version, source, SHA-256). A package so that they install as its package data."""
