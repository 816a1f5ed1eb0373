"""A fork server for `escalation-bot run`: one interpreter imports the bot once, then forks a child per
start that runs `bot.cli.main(["run", ...])` (what the `escalation-bot` console script calls) with the
run's environment, working directory and log file.

Each child is a real process of its own, on its own sockets, killed with a real SIGKILL; forking only
skips the 2 s of imports every start would otherwise pay (there are ~90 starts in the suite). The
product builds nothing at import time (docs: "No import-time side effects"), so a forked child starts from
the same state as a fresh interpreter. `FAULT_LAUNCH=exec` starts every process with
`python -m bot.cli run` instead.

Protocol (JSON lines): stdin {"argv", "env", "cwd", "log"} → stdout {"pid"}; stdout {"exit": pid, "code"}
whenever a child ends (this process reaps them; it has no threads, so forking it is safe).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import sys
import traceback


def _send(message: dict[str, object]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())  # unbuffered: nothing pending is copied into a child


def _child(request: dict[str, object]) -> None:
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        from bot.cli import main

        code = main([str(a) for a in list(request["argv"])])  # type: ignore[call-overload]
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


# Everything `escalation-bot run` imports on its way to serving (found by diffing sys.modules in a child),
# so children inherit it instead of importing it again.
PRELOAD = (
    "bot.cli",
    "bot.app",
    "bot.web",
    "bot.logs",
    "bot.diagnostics.registry",
    "bot.integrations.mlflow",
    "handlers",
    "apscheduler.triggers.interval",
    "kubernetes.client.api.core_v1_api",
    "kubernetes.client.api.batch_v1_api",
    "kubernetes.client.api.apps_v1_api",
    "packaging.requirements",
    "packaging.specifiers",
    "pydantic.validate_call_decorator",
    "uvicorn",
    "uvicorn.lifespan.off",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
)


def serve() -> None:
    for name in PRELOAD:
        importlib.import_module(name)

    # Children must not walk (and so copy) the inherited heap on their first garbage collection.
    gc.freeze()
    _send({"ready": True})
    buffer = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.05)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                break  # the suite ended
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(line))
                _send({"pid": pid})
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
