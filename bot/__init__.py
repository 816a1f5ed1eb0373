"""Escalation bot: fixes ML pipeline failures at Level 1 and escalates the rest in Slack, level by level."""

__version__ = "0.1.0"  # kept equal to pyproject.toml's version (a test checks)
