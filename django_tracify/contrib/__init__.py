"""Integrations with other Django apps; each is its own app to add to INSTALLED_APPS."""
