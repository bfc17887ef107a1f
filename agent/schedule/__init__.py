"""The schedule service: drift (and, next, bias) detectors run over windows of stored data."""
