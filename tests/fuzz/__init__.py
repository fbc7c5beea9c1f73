"""Fuzzing suite (issue 24): generated hostile inputs across the public API, the study
configs, the dataset loader and the CLI. The property every case checks and the exception
types that count as a clear error are defined in :mod:`tests.fuzz.property`. Hypothesis runs
derandomized with a fixed number of examples per test, so every run checks the same cases."""
