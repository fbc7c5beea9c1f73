"""lens benchmark suites: ratios measured side by side in one process run.

Run ``python -m benchmarks [SUITE ...] [--quick] [--out DIR]`` or ``lens bench``.
"""
