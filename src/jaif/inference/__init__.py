"""The OpenAI-compatible inference gateway: models, replicas, routing, backends."""
