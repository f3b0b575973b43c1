"""Content negotiation between the two media types an endpoint can answer (RFC 9110 §12.5.1)."""

from __future__ import annotations


def quality(accept: str | None, media: str) -> float:
    """The weight ``Accept`` gives ``media`` by name (wildcards are left out: a browser's
    ``*/*`` must not choose for it); -1 when it is not named."""
    best = -1.0
    for item in (accept or "").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if name.lower() != media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        best = max(best, q)
    return best


def prefers(accept: str | None, media: str, over: str) -> bool:
    """True when ``Accept`` names ``media`` with a weight above zero and above ``over``'s."""
    q = quality(accept, media)
    return q > 0 and q > quality(accept, over)
