"""The schedule service: drift and bias detectors run over windows of stored data."""
