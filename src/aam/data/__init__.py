"""Rarefaction, UniFrac, tokenizers, datasets and batching."""
