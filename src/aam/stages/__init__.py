"""Thin stage modules behind the `aam` CLI: parse arguments, call library code, write atomically."""
