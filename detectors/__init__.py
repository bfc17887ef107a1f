"""The analysis: watcher models that score samples, drift and bias tests. Free of I/O: services
in watchkeeper.agent feed them data and store what they return."""
