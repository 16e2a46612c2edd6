"""Training events of the factory and registration for them."""
