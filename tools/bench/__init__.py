"""Benchmarks: each prints ratios measured in one process (never a test that fails on a slow
machine); ``report`` runs them and writes docs/performance.md; ``results/`` holds the tables
measured once by hand that the report quotes."""
