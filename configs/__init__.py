"""Configurations: default.py carries every option; the others import it and override."""
