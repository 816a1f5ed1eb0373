"""HTTP endpoints: Slack (/slack/events), alert webhooks, health and metrics; plus a threaded server.

- `routes`: the app, one route per endpoint
- `pipeline`: the steps every alert webhook goes through (authenticate → rate limit → body → parse → ingest)
- `alertmanager`, `generic`, `mlflow`: one module per alert source
- `slack_events`: Slack's signed requests in HTTP mode
- `probes`: /healthz, /readyz, /metrics
- `refusals`: the log line of every request answered 4xx or 5xx
- `limits`: each source's rate limit; `answers`: the error answers all of them share
- `server`: uvicorn in a thread
"""

from bot.web.generic import parse_generic
from bot.web.limits import RateLimiter
from bot.web.mlflow import mlflow_alert, mlflow_signature
from bot.web.pipeline import MAX_BODY
from bot.web.routes import build_web
from bot.web.server import WebServer

__all__ = [
    "MAX_BODY",
    "RateLimiter",
    "WebServer",
    "build_web",
    "mlflow_alert",
    "mlflow_signature",
    "parse_generic",
]
