"""The README's pictures: Block Kit the Slack emulator stored during a real sandbox run, drawn as PNG (the L2
message, a Level 1 report, the coordinator's App Home). Checked as pictures a reader can use, valid PNGs of
a sensible size with text and coloured buttons on them, never pixel by pixel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PIL", reason="Pillow draws the pictures (pip install pillow)")

from PIL import Image, ImageColor

from bot.sandbox.demo import names
from bot.sandbox.screenshots import (
    DANGER,
    MAX_BYTES,
    MENTION,
    MESSAGE_WIDTH,
    PRIMARY,
    Fonts,
    Mrkdwn,
    Renderer,
    Style,
    capture,
    main,
    save,
)
from bot.sandbox.world import COORDINATOR, PIPELINE_ALERT, SandboxWorld, alertmanager_payload


def as_png(image: Image.Image, tmp_path: Path, stem: str) -> Image.Image:
    path = tmp_path / f"{stem}.png"
    assert save(image, path) < MAX_BYTES
    with Image.open(path) as opened:
        assert opened.format == "PNG"
        opened.load()
        return opened.convert("RGB")


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    found = image.getcolors(maxcolors=image.width * image.height) or []
    return {c for _, c in found}


def inked(image: Image.Image) -> float:
    """The share of pixels darker than the card and its backdrop: text, lines, buttons."""
    grey = image.convert("L")
    dark = sum(n for value, n in enumerate(grey.histogram()) if value < 200)
    return dark / (image.width * image.height)


def l2_message(world: SandboxWorld) -> dict[str, Any]:
    assert world.post_alerts(alertmanager_payload([PIPELINE_ALERT])).status == 202
    world.settle()
    [l2] = world.slack.messages("#data-coordinator")
    return l2


def test_the_l2_message_the_level_1_report_and_home_are_drawn_as_pngs(
    world: SandboxWorld, tmp_path: Path
) -> None:
    pictures = capture(world)

    assert set(pictures) == {"l2-message", "l1-report", "app-home"}
    for stem, picture in pictures.items():
        image = as_png(picture, tmp_path, stem)
        assert image.width == MESSAGE_WIDTH, stem
        assert 300 < image.height < 3000, stem
        assert len(colours(image)) > 20, stem  # text is anti-aliased: many greys, and coloured parts
        assert 0.01 < inked(image) < 0.5, stem  # not blank, not a solid block
    l2 = as_png(pictures["l2-message"], tmp_path, "l2")
    # Acknowledge is primary and Escalate to tech lead is danger: their buttons are drawn filled
    assert {ImageColor.getrgb(PRIMARY), ImageColor.getrgb(DANGER)} <= colours(l2)
    assert ImageColor.getrgb(MENTION) in colours(l2)  # @data-coordinator in blue


def test_a_long_message_wraps_to_the_card_it_is_drawn_on(world: SandboxWorld) -> None:
    l2 = l2_message(world)
    users, groups = names(world)
    render = Renderer(users, groups)

    wide, narrow = render.message(l2, width=1200), render.message(l2, width=520)

    assert (wide.width, narrow.width) == (1200, 520)
    assert narrow.height > wide.height + 100  # the same lines, wrapped more often


def test_mentions_show_by_name_and_bold_is_bold_in_a_recorded_message(world: SandboxWorld) -> None:
    l2 = l2_message(world)
    users, groups = names(world)
    headline = l2["blocks"][0]["text"]["text"]
    assert headline.startswith("<!subteam^")

    pieces = Mrkdwn(users, groups, now=0).line(headline, Style())

    mention = pieces[0]
    assert (mention.text, mention.style.color) == ("@data-coordinator", MENTION)
    assert any(p.style.bold and p.text == "Level 2 · INC-1 · pipeline step failed" for p in pieces)
    assert [p.emoji for p in pieces if p.emoji] == ["rotating_light"]


def test_homes_dates_read_as_the_client_shows_them(world: SandboxWorld) -> None:
    l2_message(world)
    assert world.driver is not None
    world.driver.app_home_opened(COORDINATOR)
    world.settle()
    users, groups = names(world)
    home = world.slack.home(COORDINATOR)
    line = next(
        b["text"]["text"] for b in home["blocks"] if "escalated <!date^" in b.get("text", {}).get("text", "")
    )
    stamp = re.search(r"<!date\^(\d+)\^", line)
    assert stamp is not None
    posted = int(stamp.group(1))

    shown = "".join(p.text for p in Mrkdwn(users, groups, now=posted + 600).line(line, Style()))

    assert "escalated 10 minutes ago" in shown and "<!date" not in shown


def test_without_dejavu_or_emoji_glyphs_it_still_draws(world: SandboxWorld, tmp_path: Path) -> None:
    l2 = l2_message(world)
    users, groups = names(world)
    odd = {"type": "section", "text": {"type": "mrkdwn", "text": "🦄 :tada: \U0010fffd 中文 *bold* `code`"}}
    message = {**l2, "blocks": [*l2["blocks"], odd]}

    for fonts in (Fonts(), Fonts(dirs=[tmp_path])):  # DejaVu when the machine has it; Pillow's own font
        image = as_png(Renderer(users, groups, fonts=fonts).message(message), tmp_path, "odd")
        assert image.height > 300 and inked(image) > 0.01


def test_the_script_writes_the_three_pictures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "images")]) == 0

    written = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert written == ["app-home.png", "l1-report.png", "l2-message.png"]
    for path in (tmp_path / "images").iterdir():
        assert 0 < path.stat().st_size < MAX_BYTES
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width == MESSAGE_WIDTH
    assert "l2-message.png" in capsys.readouterr().out
