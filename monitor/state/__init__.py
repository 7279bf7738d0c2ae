"""Persistence: detector windows, baselines, alert and planner states, counters, outbox."""
