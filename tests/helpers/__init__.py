"""Helpers shared by several test files: synthetic data writers, a tiny engine model, the snakemake
driver, a size-limited filesystem. Fixtures live in tests/conftest.py; a test file imports from here,
never from another test file."""
