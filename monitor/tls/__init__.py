"""Certificates on every backend: parsing, probing each address, and the pure rules."""
