"""Probers: one per file, each returns a ProbeResult and never touches metrics or alerts."""
