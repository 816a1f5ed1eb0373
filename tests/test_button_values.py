"""Every button that names an incident, a decision or a group reads its value one way: exactly as the bot
wrote it ("<id>:<level or option>", the id in ASCII digits). A value with a sign, a space, a full-width
digit, a leading zero or a trailing control character is refused with the same message by every button,
and changes nothing."""

from __future__ import annotations

import pytest

from bot.core.models import ActionId, IncidentStatus, Level
from bot.sandbox.world import COORDINATOR, SandboxWorld
from bot.services.grouping import GROUP_ACK, GROUP_ESCALATE, GROUP_RESOLVE
from tests.test_bad_input import COORD_CHANNEL, incident_state, open_l2, row_counts, without_outbox

REFUSED = "value: this button's value is not one the bot made; nothing was changed"
# every button kind that takes an id, and what follows the id in a value the bot makes
BUTTONS = {
    ActionId.ACK.value: "L2",
    ActionId.RESOLVE.value: "L2",
    ActionId.ESCALATE_L3.value: "L2",
    ActionId.ASK_DECISION.value: "L2",
    ActionId.SNOOZE.value: "L2",
    ActionId.DETAILS.value: "L2",
    f"{ActionId.DECISION_OPTION.value}_0": "0",
    GROUP_ACK: "L2",
    GROUP_RESOLVE: "L2",
    GROUP_ESCALATE: "L2",
}
NOT_OURS = {
    "sign": "+1:{}",
    "space": " 1:{}",
    "full-width digit": "\uff11:{}",
    "NUL after it": "1:{}\x00",
    "leading zero": "01:{}",
    "prefix": "INC-1:{}",
    "line break after it": "1:{}\n",
    "longer than an id": "12345678901:{}",
}


@pytest.mark.parametrize("kind", NOT_OURS)
def test_a_button_value_the_bot_did_not_write_is_refused_the_same_way_by_every_button(
    world: SandboxWorld, kind: str
) -> None:
    assert world.driver is not None
    l2 = open_l2(world)
    before_rows, before_state = row_counts(world), incident_state(world)
    refusals: dict[str, list[str]] = {}

    for action_id, rest in BUTTONS.items():
        value = NOT_OURS[kind].format(rest)
        told = len(world.slack.ephemerals(user=COORDINATOR))
        response = world.driver.block_action(COORDINATOR, action_id, value, COORD_CHANNEL, l2["ts"])
        world.settle()
        assert response.status == 200, (action_id, response.text)
        refusals[action_id] = [e["text"] for e in world.slack.ephemerals(user=COORDINATOR)[told:]]

    assert refusals == {action_id: [REFUSED] for action_id in BUTTONS}
    assert world.slack.views == []
    assert incident_state(world) == before_state
    assert without_outbox(row_counts(world)) == without_outbox(before_rows)


def test_the_value_the_bot_wrote_is_still_taken(world: SandboxWorld) -> None:
    assert world.driver is not None
    l2 = open_l2(world)

    world.driver.block_action(COORDINATOR, ActionId.DETAILS, "1:L2", COORD_CHANNEL, l2["ts"], message=l2)
    world.settle()
    world.driver.block_action(COORDINATOR, ActionId.ACK, "1:L2", COORD_CHANNEL, l2["ts"], message=l2)
    world.settle()

    assert [v["callback_id"] for v in world.slack.views] == [ActionId.DETAILS_VIEW]
    assert incident_state(world)[:2] == (Level.L2.value, IncidentStatus.ACKNOWLEDGED.value)
