# escalation-bot: the bot as a container image.
#
#   docker build -t escalation-bot:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v escalation-bot-data:/data -p 3000:3000 \
#     -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET escalation-bot:0.1.0
#
# Two stages: the first installs the package and its dependencies (no test extras) into a virtualenv,
# the second copies only that virtualenv onto a clean slim Python. Nothing secret is baked in: tokens,
# DATABASE_URL and the rest come from the environment at run time. The root filesystem may be read-only:
# everything the process writes goes to /tmp (caches, temporary files) or /data (the default SQLite file).

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/escalation-bot
WORKDIR /src
# only what `pip install .` needs: the package metadata and the packages it ships
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY templates ./templates
# pip is not needed at run time, nor the kubernetes client's asyncio twin (68 MB; the bot uses the
# synchronous client only). The demo then runs from the installed package, outside the source tree:
# every scenario end to end on SQLite, the Slack emulator and the sandbox cluster, with no network.
RUN /opt/escalation-bot/bin/pip install . \
 && /opt/escalation-bot/bin/pip uninstall --yes pip \
 && rm -rf /opt/escalation-bot/lib/python*/site-packages/kubernetes/aio
WORKDIR /tmp
RUN MLFLOW_DISABLE_TELEMETRY=true /opt/escalation-bot/bin/escalation-bot demo > /dev/null

FROM python:${PYTHON_VERSION}-slim
ARG UID=10001
LABEL org.opencontainers.image.title="escalation-bot" \
      org.opencontainers.image.description="Fixes ML pipeline failures at Level 1 and escalates the rest in Slack" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${UID}" escalation-bot \
 && useradd --system --uid "${UID}" --gid "${UID}" --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin escalation-bot \
 && mkdir -p /data /etc/escalation-bot \
 && chown "${UID}:${UID}" /data
COPY --from=build /opt/escalation-bot /opt/escalation-bot
# the example configuration; mount your own app.yaml over it (a ConfigMap in Kubernetes)
COPY app.yaml /etc/escalation-bot/app.yaml
ENV PATH="/opt/escalation-bot/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    XDG_DATA_HOME=/tmp/.local/share \
    MPLCONFIGDIR=/tmp/matplotlib \
    MLFLOW_DISABLE_TELEMETRY=true
# a relative SQLite URL (the default when DATABASE_URL is unset) lands on the /data volume
WORKDIR /data
USER ${UID}:${UID}
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["escalation-bot"]
CMD ["run", "--config", "/etc/escalation-bot/app.yaml"]
