"""How ``list`` and ``list --rev`` print a registry: one record per instance, as JSON or text.

``list`` knows each lease's countdown (it asks etcd now); ``list --rev N`` does not (a past
revision's countdown is gone), so its records carry the lease without a TTL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Any

import humanize

from ..registry.census import LayoutCount, describe, names_frameworks
from ..registry.etcd.config import ConnectionConfig
from ..registry.etcd.connection import EtcdConnection
from ..registry.model import Instance, RegistryState
from ..registry.sanitize import safe_line

#: lease id -> (remaining TTL, granted TTL) as etcd answered; None: not asked (the past).
Ttls = dict[int, tuple[int, int]] | None


async def lease_ttls(conn: EtcdConnection, leases: set[int]) -> dict[int, tuple[int, int]]:
    """Each lease's TTL now, 16 reads at a time."""
    semaphore = asyncio.Semaphore(16)

    async def one(lease_id: int) -> tuple[int, tuple[int, int]]:
        async with semaphore:
            ttl, granted, _ = await conn.time_to_live(lease_id)
            return lease_id, (ttl, granted)

    return dict(await asyncio.gather(*(one(lease) for lease in leases)))


def instance_record(inst: Instance, ttls: Ttls) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": inst.key,
        "id": inst.instance_id,
        "address": inst.address,
        "lease": inst.lease_hex if inst.lease else None,
        "layout": inst.layout_name,
    }
    if inst.layout is not None:  # what the framework says of it
        record["addresses"] = list(inst.layout.addresses)
        record["details"] = dict(inst.layout.fields)
        if inst.layout.healthy is not None:
            record["healthy"] = inst.layout.healthy
    if ttls is not None:
        ttl, granted = ttls.get(inst.lease, (None, None)) if inst.lease else (None, None)
        record["ttl"] = max(ttl, 0) if ttl is not None else None
        record["granted_ttl"] = granted
        record["expired"] = bool(inst.lease and ttl is not None and ttl < 0)
    record.update(
        create_revision=inst.create_revision,
        mod_revision=inst.mod_revision,
        version=inst.version,
        value=inst.fields if inst.fields is not None else inst.value_text(),
    )
    if inst.problems:
        record["error"] = "; ".join(inst.problems)
    return record


def service_records(state: RegistryState, ttls: Ttls) -> list[dict[str, Any]]:
    return [
        {
            "name": group.name,
            "instances": [instance_record(inst, ttls) for inst in group.sorted_instances()],
        }
        for group in state.sorted_groups()
    ]


def layouts_json(layouts: list[LayoutCount]) -> list[dict[str, object]]:
    """Which layouts were found where, for ``"layouts"``: most instances first."""
    return [c.to_json() for c in layouts]


def print_layouts(layouts: list[LayoutCount]) -> None:
    """The text listing's last line, when more than the walkthrough's layout is held."""
    if names_frameworks(layouts):
        print(f"layouts: {safe_line(describe(layouts))}")


def print_json(
    config: ConnectionConfig,
    revision: int,
    groups: list[dict[str, Any]],
    layouts: list[LayoutCount],
    **extra: Any,
) -> None:
    doc: dict[str, Any] = {
        "endpoint": config.label,
        "prefix": config.prefix,
        **({"prefixes": list(config.prefixes)} if len(config.prefixes) > 1 else {}),
        "revision": revision,
        "services": groups,
        "layouts": layouts_json(layouts),
        **extra,
    }
    print(_json_text(doc))


class JsonList:
    """:func:`print_json`'s document written as it is made: one list of it (``key``) item
    by item (:meth:`add`), then fields known only at the end (:meth:`close`). The text is
    what ``json.dumps(..., indent=2)`` of the whole would be, with those fields last."""

    def __init__(
        self, key: str, config: ConnectionConfig, revision: int, groups: list[dict[str, Any]],
        layouts: list[LayoutCount], **extra: Any,
    ) -> None:  # fmt: skip
        doc = {"endpoint": config.label, "prefix": config.prefix, "revision": revision,
               "services": groups, "layouts": layouts_json(layouts), **extra,
               key: []}  # fmt: skip
        if len(config.prefixes) > 1:
            doc["prefixes"] = list(config.prefixes)
        text = _json_text(doc)
        assert text.endswith("[]\n}")
        sys.stdout.write(text[: -len("]\n}")])
        self.items = 0

    def add(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            sys.stdout.write(",\n    " if self.items else "\n    ")
            sys.stdout.write(_json_text(item).replace("\n", "\n    "))
            self.items += 1
        sys.stdout.flush()

    def close(self, **fields: Any) -> None:
        tail = _json_text(fields)[1:] if fields else "\n}"
        sys.stdout.write(("\n  ]" if self.items else "]") + ("," + tail if fields else tail))
        sys.stdout.write("\n")
        sys.stdout.flush()


def _json_text(doc: Any) -> str:
    # Strict JSON for any client: ASCII only, so every control, C1 and bidi character of
    # a key or value travels \u-escaped; NaN/Infinity were made text when parsed.
    return json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False)


def lease_text(record: dict[str, Any]) -> str:
    """The last column: the countdown when known, else which lease (or none)."""
    if record["lease"] is None:
        return "no lease"
    if "ttl" not in record:
        return f"lease {record['lease']}"
    if record["expired"] or record["ttl"] is None:
        return "expired"
    return humanize.naturaldelta(record["ttl"])


def print_text(groups: list[dict[str, Any]]) -> None:
    """Services and their instances, one line each; every byte from etcd made display-safe."""
    for group in groups:
        count = len(group["instances"])
        print(f"{safe_line(group['name'])}  ({count} instance{'s' if count != 1 else ''})")
        for rec in group["instances"]:
            shown_id = safe_line(rec["id"][:8])
            address = safe_line(rec["address"]) if rec["address"] is not None else "(no address)"
            line = f"  {shown_id:<8}  {address:<32}  {lease_text(rec)}"
            if "error" in rec:
                line += f"  ⚠ {safe_line(rec['error'])}"
            print(line)
