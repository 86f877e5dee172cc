"""Key layout of one namespace. Every key carries the Redis Cluster hash tag ``{schedcore:<ns>}``.

=========================== ====== ===================================================
key                         type   holds
=========================== ====== ===================================================
``{schedcore:ns}:sched``    hash   schedule id -> ``<f>;<n>;<p>\n<definition JSON>``
``{schedcore:ns}:ids``      zset   every schedule id, score 0 (listing by ZRANGEBYLEX)
``{schedcore:ns}:idx``      zset   the time index: member -> due (ms epoch)
``{schedcore:ns}:lease``    zset   entries claimed: member -> lease expiry (ms epoch)
``{schedcore:ns}:claims``   hash   member -> ``token|due|held|owner`` of its live claim
``{schedcore:ns}:token``    string fencing-token counter (INCRBY)
``{schedcore:ns}:r:<id>``   set    ids of runs dispatched and not finished (while any)
``{schedcore:ns}:x:<id>``   set    the schedule's non-fire members in ``idx``/``lease`` (while any)
``{schedcore:ns}:h:<id>``   list   run history, newest first (LPUSH + LTRIM, optional TTL)
``{schedcore:ns}:wake``     -      pub/sub channel: dues (ms) of entries put in the index
=========================== ====== ===================================================

In ``sched``: ``f`` is the fire entry ``nominal,due,attempt`` (empty: none), ``n`` the
runs started (empty: 0), ``p`` the parked entry ``kind|nominal|due|attempt`` (empty:
none); the definition is ``Schedule.to_dict(compact=True)`` without its id (the field
name holds it) and with default retry settings left out. One field in one shared hash
costs far less memory than a key per schedule, which keeps a stored cron schedule
under 500 bytes including its index entries.

Index members: the fire entry of schedule ``id`` is the member ``id`` itself (its data is
``f``); every other entry is ``id|<kind>|<nominal ms>|<attempt>``.
"""

from __future__ import annotations

import re

from schedcore.exceptions import ValidationError

__all__ = ["NAMESPACE_RE", "Keys", "check_namespace"]

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def check_namespace(value: object) -> str:
    """A namespace: 1 to 100 characters of ``[A-Za-z0-9._-]`` (no braces, colons or spaces)."""
    if not isinstance(value, str) or not NAMESPACE_RE.match(value):
        raise ValidationError("namespace", value, "must be 1-100 characters of A-Z a-z 0-9 . _ -")
    return value


class Keys:
    """The names of every key of one namespace."""

    __slots__ = ("channel", "claims", "ids", "index", "leases", "prefix", "schedules", "token")

    def __init__(self, namespace: str) -> None:
        prefix = f"{{schedcore:{check_namespace(namespace)}}}:"
        self.prefix = prefix
        self.index = prefix + "idx"
        self.leases = prefix + "lease"
        self.claims = prefix + "claims"
        self.token = prefix + "token"
        self.ids = prefix + "ids"
        self.schedules = prefix + "sched"
        self.channel = prefix + "wake"

    @property
    def scripts(self) -> list[str]:
        """The KEYS every Lua script receives."""
        return [self.index, self.leases, self.claims, self.schedules, self.ids, self.token]

    def running(self, schedule_id: str) -> str:
        """The set of running run ids of ``schedule_id``."""
        return f"{self.prefix}r:{schedule_id}"

    def extras(self, schedule_id: str) -> str:
        """The set of non-fire index members of ``schedule_id``."""
        return f"{self.prefix}x:{schedule_id}"

    def history(self, schedule_id: str) -> str:
        """The capped run-history list of ``schedule_id``."""
        return f"{self.prefix}h:{schedule_id}"
