"""The README's pictures of the bot in Slack, drawn from a sandbox run's Block Kit.

    python bench/screenshots.py [DIR]    (DIR defaults to docs/images)

Runs the sandbox on loopback (the Slack emulator, the sandbox cluster, the bot on SQLite): a failing
pipeline step escalated to the data coordinator, an OOM-killed training job fixed at Level 1, and the
coordinator opening the bot's Home. Writes DIR/l2-message.png, DIR/l1-report.png and DIR/app-home.png;
the drawing is bot/sandbox/screenshots.py (Pillow).
"""

from __future__ import annotations

import sys

from bot.sandbox.screenshots import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
