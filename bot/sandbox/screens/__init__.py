"""Drawing Slack messages and App Home tabs as PNG (see bot.sandbox.screenshots)."""
