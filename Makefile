.PHONY: install test fault security lint demo ci

install:
	python3 -m venv .venv && .venv/bin/pip install -e '.[test]'

test:
	.venv/bin/pytest -q

fault:
	.venv/bin/pytest -q tests/fault

lint:
	.venv/bin/ruff check bot handlers tests && .venv/bin/ruff format --check bot handlers tests
	.venv/bin/lint-imports && .venv/bin/mypy bot/core bot/diagnostics

demo:
	.venv/bin/escalation-bot demo

ci:
	bash .ci/run

security:
	.venv/bin/pytest -q tests/security
