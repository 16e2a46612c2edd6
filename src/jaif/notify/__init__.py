"""Notifications by e-mail: through SMTP, or into a local outbox folder in the embedded default."""
