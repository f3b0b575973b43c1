"""Pacing: a client told to come back later does not have its next request read at once.

When ogshot refuses a client's new card (``429`` over its budget, ``503`` when every slot is
busy) it answers at once, tells the client when to come back (``Retry-After``), and remembers
that here, in a bounded map, until then. Two things use the memory:

- the budget (``budget.py``): until its ``Retry-After`` has passed, a client refused for its
  budget has its next new cards refused at once, with the time left, without asking the
  rate-limit store (in memory or Redis) again: it would give the same answer;
- the connection (``connection.py``): when a remembered client sends its next request before
  its ``Retry-After``, the connection is not read for what is left of it, at most
  ``OGSHOT_REFUSAL_PAUSE`` seconds; then the request is read and served like any other. This is
  the back-pressure of TCP: the client's next bytes wait in the socket's buffers, costing the
  server nothing, instead of queueing in the event loop ahead of other clients' cache hits.

What is never held: a request for a card that is fresh in the memory cache under that very
query string (a repeat hit is answered at once, whoever asks), and a request from anyone else.
Behind a trusted proxy, whose one connection carries many clients' requests one after another,
the client is read from each request's own head, by the same rule as everywhere
(``clients.py``); only a remembered client's request waits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .clients import ClientRule, budget_key

#: The key of the :class:`Pacer` in the lifespan state the server gives each connection.
PACER = "ogshot.pacer"
#: Clients remembered at once; past it the oldest are forgotten (they are then simply not held).
MAX_REMEMBERED = 16384
#: Bytes of a request head looked at to find its client; a longer head is not held.
MAX_HEAD = 16 * 1024

Clock = Callable[[], float]
#: Whether ``(method, request target)`` names a card fresh in the memory cache.
HitCheck = Callable[[bytes, bytes], bool]


class RefusedClients:
    """Who was told to come back later, and until when (monotonic seconds), per budget key."""

    def __init__(self, maxsize: int = MAX_REMEMBERED, *, clock: Clock = time.monotonic) -> None:
        self.maxsize = maxsize
        self.clock = clock
        #: budget key → (until for any refusal, until for a refusal over the budget)
        self._until: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._latest = 0.0

    def __len__(self) -> int:
        if self._until and self.clock() >= self._latest:
            self._until.clear()  # every entry has run out: nothing to look for any more
        return len(self._until)

    def note(self, client: str, retry_after: float, *, budget: bool) -> None:
        """``client`` was refused and told to come back in ``retry_after`` seconds; ``budget``
        when the refusal was for its own budget (429)."""
        key = budget_key(client)
        until = self.clock() + retry_after
        any_until, budget_until = self._until.pop(key, (0.0, 0.0))
        if budget:
            budget_until = max(budget_until, until)
        self._until[key] = (max(any_until, until), budget_until)
        self._latest = max(self._latest, until)
        while len(self._until) > self.maxsize:
            self._until.popitem(last=False)

    def left(self, client: str) -> float:
        """Seconds until ``client`` was told to come back (0 when it was not, or that is past)."""
        return self._left(client, 0)

    def budget_left(self, client: str) -> float:
        """Seconds until ``client``'s budget was said to allow a new card again (0: now)."""
        return self._left(client, 1)

    def _left(self, client: str, which: int) -> float:
        if not self._until:
            return 0.0
        key = budget_key(client)
        entry = self._until.get(key)
        if entry is None:
            return 0.0
        now = self.clock()
        if max(entry) <= now:
            del self._until[key]
            return 0.0
        return max(0.0, entry[which] - now)


class Pacer:
    """Decides, from a request's first bytes, how long its connection waits before it is read."""

    def __init__(
        self,
        refused: RefusedClients,
        rule: ClientRule,
        pause: float,
        fresh_hit: HitCheck | None = None,
        on_hold: Callable[[], None] = lambda: None,
    ) -> None:
        self.refused = refused
        self.rule = rule
        self.pause = pause
        self.fresh_hit = fresh_hit
        #: Called once per held request (``ogshot_paced_requests`` in /metrics).
        self.on_hold = on_hold

    def hold_for(self, peer: str | None, data: bytes) -> float:
        """Seconds to wait before reading ``data`` (the start of a request) from ``peer``."""
        if self.pause <= 0 or not len(self.refused):
            return 0.0
        peer = peer or "-"
        head = data[:MAX_HEAD].lstrip(b"\r\n")
        line_end = head.find(b"\r\n")
        if self.rule.is_trusted(peer):
            # The connection carries many clients' requests: this one's client is in its head.
            head_end = head.find(b"\r\n\r\n")
            if head_end < 0:
                return 0.0  # proxies send a head whole; a partial one is read at once
            client, _ = self.rule.resolve(
                {"client": (peer, 0), "headers": _forwarding_fields(head[line_end + 2 : head_end])}
            )
        else:
            client = peer
        left = self.refused.left(client)
        if left <= 0:
            return 0.0
        if line_end >= 0 and self.fresh_hit is not None:
            method, _, rest = head[:line_end].partition(b" ")
            if self.fresh_hit(method, rest.partition(b" ")[0]):
                return 0.0
        self.on_hold()
        return min(left, self.pause)


_FORWARDING = (b"x-forwarded-for", b"forwarded", b"x-forwarded-proto")


def _forwarding_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """The proxy fields of a request's header block, names in lower case, as ASGI gives them."""
    fields = []
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            name = name.strip().lower()
            if name in _FORWARDING:
                fields.append((name, value.strip()))
    return fields
