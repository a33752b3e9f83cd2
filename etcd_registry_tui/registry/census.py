"""Which registry layouts are held, and where: ``kratos 3 under /microservices/``.

:class:`RegistryState` keeps one :class:`LayoutCensus` up to date as instances come and
go (two dict operations per change), so the status line and ``list`` can say which layouts
were found where without walking 100,000 instances.

"Where" is the part of the key a user would type as ``--prefix``: the watched prefix the
key lies under, or the key's first path segment when that is longer (under ``--prefix /``
a Kratos key is counted under ``/microservices/``, not under ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The census name of keys that fit no layout (shown raw, as ``(unrecognised keys)``).
RAW = "unrecognised"
#: Layouts not worth a word on their own: the walkthrough's, and keys that fit none (what the
#: tree shows anyway).
PLAIN = frozenset({"services", RAW})


@dataclass(slots=True, frozen=True)
class LayoutCount:
    layout: str
    where: str
    instances: int

    def to_json(self) -> dict[str, object]:
        return {"layout": self.layout, "prefix": self.where, "instances": self.instances}


def root_of(key: bytes) -> bytes | None:
    """The first path segment with its '/', the leading one included (None: no '/')."""
    at = key.find(b"/", 1)
    return key[: at + 1] if at > 0 else None


def where_of(raw_key: bytes, prefixes: tuple[bytes, ...], by_root: bool = True) -> bytes:
    """The longer of the watched prefix ``raw_key`` lies under (the longest that fits) and
    (``by_root``) its :func:`root_of`.

    Raw keys are counted by watched prefix only: their first segments are anyone's, and
    the census must not grow with them.
    """
    if len(prefixes) == 1:
        prefix = prefixes[0]
    else:
        fits = [p for p in prefixes if raw_key.startswith(p)]
        prefix = max(fits, key=len) if fits else prefixes[0]
    # A '/' inside the prefix ends the root there: no longer root (and no slice to make).
    if not by_root or raw_key.find(b"/", 1, len(prefix)) > 0 or not raw_key.startswith(prefix):
        return prefix
    root = root_of(raw_key)
    return root if root is not None and len(root) > len(prefix) else prefix


class LayoutCensus:
    """Instances counted by layout and by where; never negative, empty entries dropped.
    Each change costs a few dict operations; :meth:`totals` is as cheap as the number of
    layouts, whatever the number of places."""

    __slots__ = ("_places", "_totals")

    def __init__(self) -> None:
        #: layout -> where -> instances.
        self._places: dict[str, dict[bytes, int]] = {}
        #: layout -> instances (the sum of its places).
        self._totals: dict[str, int] = {}

    def add(self, layout: str, where: bytes) -> None:
        places = self._places.get(layout)
        if places is None:
            places = self._places[layout] = {}
        places[where] = places.get(where, 0) + 1
        self._totals[layout] = self._totals.get(layout, 0) + 1

    def remove(self, layout: str, where: bytes) -> None:
        places = self._places.get(layout)
        if places is None or where not in places:
            return
        if places[where] > 1:
            places[where] -= 1
        else:
            del places[where]
        if self._totals[layout] > 1:
            self._totals[layout] -= 1
        else:
            del self._totals[layout], self._places[layout]

    def counts(self) -> list[LayoutCount]:
        """Every (layout, where), most instances first; raw keys last."""
        return sorted(
            (
                LayoutCount(layout, _text(where), n)
                for layout, places in self._places.items()
                for where, n in places.items()
            ),
            key=lambda c: (c.layout == RAW, -c.instances, c.layout, c.where),
        )

    def totals(self) -> list[LayoutCount]:
        """One entry per layout, most first, raw keys last; ``where`` is the one place it
        was found in, or "" when it was found in several."""
        return sorted(
            (
                LayoutCount(layout, self._only_place(layout), n)
                for layout, n in self._totals.items()
            ),
            key=lambda c: (c.layout == RAW, -c.instances, c.layout),
        )

    def _only_place(self, layout: str) -> str:
        places = self._places[layout]
        return _text(next(iter(places))) if len(places) == 1 else ""


def _text(where: bytes) -> str:
    return where.decode("utf-8", "backslashreplace")


def names_frameworks(counts: list[LayoutCount]) -> bool:
    """Whether ``counts`` hold a framework's layout (more than :data:`PLAIN` ones)."""
    return any(c.layout not in PLAIN for c in counts)


def describe(counts: list[LayoutCount]) -> str:
    """One line: ``kratos 3 under /microservices/; services 12 under /services/``."""
    return "; ".join(f"{c.layout} {c.instances:,} under {c.where}" for c in counts)
