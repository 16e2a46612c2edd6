"""Applications for access, their reviews and every state transition."""
