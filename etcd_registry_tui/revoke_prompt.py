"""What a revoke takes with it: every key on the leases, of every kind, named in the question.

A lease holds whatever was put on it: the registry's instance, the same instance's election
candidate (``/elections/…``), anything else. etcd knows them all (``LeaseTimeToLive`` with
``keys``, as ``etcdctl lease timetolive --keys``), so the question asks it; when etcd cannot
be asked (or for many leases at once), the keys the dashboard holds are named and the
question says there may be more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from .registry.etcd.connection import EtcdConnection
from .registry.etcd.errors import RegistryError
from .registry.sanitize import safe_line

#: Up to this many leases etcd is asked about, one call each; beyond, the keys held here.
MAX_ASKED = 32
#: Keys named in the question (then "and N more"), and how much of each.
NAMED = 3
KEY_WIDTH = 80


async def keys_on_leases(
    conn: EtcdConnection, leases: Collection[int], known: Callable[[int], set[bytes]]
) -> tuple[set[bytes], bool]:
    """Every key on ``leases`` and whether etcd said so (False: only what ``known`` holds)."""
    if len(leases) <= MAX_ASKED:
        try:
            found = await asyncio.gather(*(conn.time_to_live(lease, keys=True) for lease in leases))
        except RegistryError:
            pass
        else:
            return {bytes(key) for _, _, keys in found for key in keys}, True
    held: set[bytes] = set()
    for lease in leases:
        held |= known(lease)
    return held, False


def keys_phrase(keys: Collection[bytes], leases: int = 1, exact: bool = True) -> str:
    """``1 key goes with it: K.`` / ``2 keys go with them: A, B.`` (``exact`` False: "at
    least", as only the keys the dashboard holds are known)."""
    it = "it" if leases == 1 else "them"
    count = len(keys)
    if count == 0:
        if exact:
            return f"No key is attached to {it}."
        return f"The dashboard holds no key on {it} (etcd could not be asked)."
    names = sorted(safe_line(k.decode("utf-8", "backslashreplace"), KEY_WIDTH) for k in keys)
    shown = ", ".join(names[:NAMED]) + (f" and {count - NAMED} more" if count > NAMED else "")
    verb = "1 key goes" if count == 1 else f"{count} keys go"
    if not exact:
        return f"At least {verb} with {it} (etcd could not be asked): {shown}."
    return f"{verb[0].upper()}{verb[1:]} with {it}: {shown}."
