"""The kill -9 fault suite: `escalation-bot run` as a real process, killed at seeded points and restarted."""
