"""Key layout of one namespace. Every key carries the Redis Cluster hash tag ``{schedcore:<ns>}``.

=========================== ====== ===================================================
key                         type   holds
=========================== ====== ===================================================
``{schedcore:ns}:idx``      zset   the time index: member -> due (ms epoch)
``{schedcore:ns}:lease``    zset   entries claimed: member -> lease expiry (ms epoch)
``{schedcore:ns}:claims``   hash   member -> ``token|due|owner`` of its live claim
``{schedcore:ns}:token``    string fencing-token counter (INCRBY)
``{schedcore:ns}:ids``      zset   every schedule id, score 0 (listing by ZRANGEBYLEX)
``{schedcore:ns}:s:<id>``   hash   ``d`` definition JSON, ``f`` fire entry, ``n`` runs started,
                                   ``p`` parked entry
``{schedcore:ns}:r:<id>``   set    ids of runs dispatched and not finished
``{schedcore:ns}:x:<id>``   set    the schedule's non-fire members in ``idx``/``lease``
``{schedcore:ns}:h:<id>``   list   run history, newest first (LPUSH + LTRIM)
``{schedcore:ns}:wake``     -      pub/sub channel: due (ms) of entries put in the index
=========================== ====== ===================================================

Index members: the fire entry of schedule ``id`` is the member ``id`` itself (its data is
in ``s:<id>`` field ``f``); every other entry is ``id|<kind>|<nominal ms>|<attempt>``.
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

    __slots__ = ("channel", "claims", "ids", "index", "leases", "prefix", "token")

    def __init__(self, namespace: str) -> None:
        prefix = f"{{schedcore:{check_namespace(namespace)}}}:"
        self.prefix = prefix
        self.index = prefix + "idx"
        self.leases = prefix + "lease"
        self.claims = prefix + "claims"
        self.token = prefix + "token"
        self.ids = prefix + "ids"
        self.channel = prefix + "wake"

    def schedule(self, schedule_id: str) -> str:
        """The hash holding the definition and state of ``schedule_id``."""
        return f"{self.prefix}s:{schedule_id}"

    def running(self, schedule_id: str) -> str:
        """The set of running run ids of ``schedule_id``."""
        return f"{self.prefix}r:{schedule_id}"

    def extras(self, schedule_id: str) -> str:
        """The set of non-fire index members of ``schedule_id``."""
        return f"{self.prefix}x:{schedule_id}"

    def history(self, schedule_id: str) -> str:
        """The capped run-history list of ``schedule_id``."""
        return f"{self.prefix}h:{schedule_id}"
