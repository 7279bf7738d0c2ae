"""recmon: synthetic per-tenant monitor for multi-tenant search and recommendations APIs."""

import sys

__version__ = "0.1.0"

# httpx's package imports its own command line (httpx._main: click, rich, pygments) whenever
# those happen to be installed, as in a development environment: ~60 ms of CPU at every
# recmon start, for a command recmon never runs. The module marked absent for that one
# import, httpx keeps its stub `httpx.main` instead; nothing else of httpx changes.
if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]
