"""The config schema, shipped as package data."""
