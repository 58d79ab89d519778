"""Benchmarks: run as modules from the project root (`python -m bench.export_bench`), on the
same embedded stack and harness as the tests."""
