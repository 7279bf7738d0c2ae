"""The status page and /status: model (pure), collection from the running monitor, rendering."""
