"""The parts of the local Slack workspace: its data, its Web API surface, its faults and its Socket Mode."""
