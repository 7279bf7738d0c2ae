"""From alert events to delivered notifications: model, planning, outbox, notifiers."""
