"""The parts of the sandbox Kubernetes API: its wire errors, patches and selectors, and the Jobs the bot
creates, from admission to how they end."""
