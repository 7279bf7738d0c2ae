"""recmon: synthetic per-tenant monitor for multi-tenant search and recommendations APIs."""

__version__ = "0.1.0"
