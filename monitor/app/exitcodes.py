"""recmon's exit codes (docs/ARCHITECTURE.md): a module of their own, so that the command line
can name them without importing the parts that run."""

EXIT_HEALTHY = 0
EXIT_ALERTS = 1
EXIT_ERROR = 2
