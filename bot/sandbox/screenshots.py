"""Pictures of what the bot shows in Slack, drawn from the Block Kit the Slack emulator stored: a message
the way the Slack client shows it (a white card with the app's name and the time, sections with *bold*,
mentions by name, bullet lines, context lines in small grey, buttons) and a person's App Home tab, as PNG.

`python bench/screenshots.py [DIR]` runs a short sandbox scenario (a failing pipeline step escalated to the
data coordinator, an OOM-killed training job fixed at Level 1, the coordinator opening Home) and writes
DIR/l2-message.png, DIR/l1-report.png and DIR/app-home.png.

Pillow draws them; it is not one of the bot's dependencies (install it to use this module). DejaVu fonts
are used when the machine has them, Pillow's own font otherwise; an emoji the font cannot draw shows as
its name in brackets."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from bot.sandbox.demo import names
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.screens.mrkdwn import Mrkdwn, Style
from bot.sandbox.screens.renderer import Renderer
from bot.sandbox.screens.style import DANGER, MAX_BYTES, MENTION, MESSAGE_WIDTH, PRIMARY, Fonts
from bot.sandbox.world import COORDINATOR, OOM_ALERT, PIPELINE_ALERT, SandboxWorld, alertmanager_payload

__all__ = [
    "DANGER",
    "MAX_BYTES",
    "MENTION",
    "MESSAGE_WIDTH",
    "PRIMARY",
    "Fonts",
    "Mrkdwn",
    "Renderer",
    "Style",
    "capture",
    "main",
    "save",
]


def capture(world: SandboxWorld) -> dict[str, Image.Image]:
    """In a started sandbox: a failing pipeline step Level 1 cannot fix goes to the data coordinator, an
    OOM-killed training job is fixed at Level 1, and the coordinator opens the bot's Home. Returns the
    pictures by file stem: the L2 message, the fixed Level 1 report and the coordinator's Home."""
    assert world.driver is not None
    world.post_alerts(alertmanager_payload([PIPELINE_ALERT, OOM_ALERT]))
    world.settle()
    assert world.driver.app_home_opened(COORDINATOR).status == 200
    world.settle()
    users, groups = names(world)
    render = Renderer(users, groups)
    [l2] = world.slack.messages("#data-coordinator")
    root = next(m for m in world.slack.messages("#ml-alerts") if "train-churn-model" in m["text"])
    [l1] = world.slack.thread("#ml-alerts", root["ts"])
    return {
        "l2-message": render.message(l2),
        "l1-report": render.message(l1),
        "app-home": render.home(world.slack.home(COORDINATOR)),
    }


def save(image: Image.Image, path: Path) -> int:
    """`image` as a PNG at `path`, down to a 256-colour palette when it would pass MAX_BYTES; its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", optimize=True)
    if path.stat().st_size > MAX_BYTES:
        image.quantize(256, dither=Image.Dither.NONE).save(path, "PNG", optimize=True)
    return path.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/screenshots.py", description="Draw the README's pictures of the bot in Slack."
    )
    parser.add_argument("directory", nargs="?", default="docs/images", type=Path)
    args = parser.parse_args(argv)
    with SandboxMlflowAPI() as mlflow, SandboxWorld(mlflow_url=mlflow.url) as world:
        pictures = capture(world)
    for stem, image in pictures.items():
        path = args.directory / f"{stem}.png"
        size = save(image, path)
        print(f"{path}  {image.width}×{image.height}  {size / 1000:.0f} KB")
    return 0
