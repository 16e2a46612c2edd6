"""The catalogue of domain solutions: models with model cards, linked to the gateway's models."""
