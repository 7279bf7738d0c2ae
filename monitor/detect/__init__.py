"""Detection: pure functions from (state, probe result, now) to (state, alert events)."""
