"""Organisations, users, projects and API keys."""
