"""Every write to Slack goes through the outbox: stored in the same transaction as the change that
caused it, then delivered in order per incident, paced per channel and per method tier, retried on 429
(honouring Retry-After), on 5xx and on connection errors with backoff, and never posted twice after an
ambiguous failure.

- `queue`: the rows (enqueue, rewrite, renew, put back, retry, finish); `claims`: claiming due rows in order
- `pacing`: Slack's budgets (a token bucket per channel and per tiered method) and the holds after a 429
  or during an outage
- `sender`: one small function per kind of write, in a table
- `lookup`: finding a post whose answer was lost, by the outbox id in its message metadata
- `failures`: the error policy (rate limit, outage, final, or an error in the bot); `outcomes`: what
  becomes of a row by its verdict
- `delivery`: the loop that ties them together
"""

from bot.integrations.slack.outbox.delivery import OutboxDelivery
from bot.integrations.slack.outbox.lookup import METADATA_EVENT
from bot.integrations.slack.outbox.queue import enqueue, rewrite

__all__ = ["METADATA_EVENT", "OutboxDelivery", "enqueue", "rewrite"]
