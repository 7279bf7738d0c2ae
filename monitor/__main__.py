"""`python -m monitor` and the `recmon` command (pyproject.toml's console script)."""

import gc
import sys


def main() -> int:
    # Loading recmon's modules allocates hundreds of thousands of objects, nearly none of them
    # garbage: the collector's ~135 passes over them were ~45 ms of CPU of a start (13% of the
    # imports and the configuration's load). Off while the modules load, on before anything runs.
    gc.disable()
    try:
        from monitor.cli import main as cli_main
    finally:
        gc.enable()
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
