"""The parts of the sandbox Kubernetes API: its wire errors, patches and selectors, the Jobs the bot
creates, from admission to how they end, and the Argo Workflows it retries or resubmits, with the tiny
controller that runs them."""
