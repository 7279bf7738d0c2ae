"""Incident replays: the real detector, planner and notifiers, driven in virtual time."""
