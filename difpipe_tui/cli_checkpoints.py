"""``difpipe checkpoints list|show|rm``: the transfers that are not done and their checkpoints."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from .core.errors import ExitCode, UsageError
from .render import Column, emit, emit_doc, human_bytes, plain


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _done_text(row: Mapping[str, Any]) -> str:
    offset, total = row["offset"], row["total"]
    if total:
        return f"{human_bytes(offset)} ({100 * offset / total:.0f}%)"
    return human_bytes(offset)


def _prefix_text(row: Mapping[str, Any]) -> str:
    if row.get("ranges"):  # --parallel: no prefix digest, the whole file's is checked
        return f"- ({len(row['ranges'])} ranges)"
    return row["prefix_digest"][:12] if row.get("prefix_digest") else "-"


def _ranges(cp: Any) -> list[dict[str, int]] | None:
    """The byte ranges of a ``--parallel`` checkpoint and how far each got, else None."""
    if not cp.hash_state:
        return None
    from .core.transfer.parresume import RangeState

    state = RangeState.from_blob(cp.hash_state)
    if state is None:
        return None
    return [{"offset": o, "length": n, "done": d} for o, n, d in state.ranges]


def _checkpoint_doc(cp: Any) -> dict[str, Any]:
    doc = plain(cp.to_dict())
    ranges = _ranges(cp)
    if ranges is not None:
        doc["ranges"] = ranges
    return doc


def cmd_checkpoints_list(args: argparse.Namespace) -> int:
    from .core.store import Store, TransferStatus

    now = time.time()
    rows = []
    with Store.open() as store:
        statuses = [s for s in TransferStatus if s is not TransferStatus.DONE]
        for rec in store.list_transfers(status=statuses, limit=1000):
            cps = {cp.destination: cp for cp in store.get_checkpoints(rec.id)}
            dests = list(rec.destinations) + [d for d in cps if d not in rec.destinations]
            for dest in dests:
                cp = cps.get(dest)
                updated = cp.updated_at if cp is not None else rec.updated_at
                rows.append(
                    {
                        "transfer_id": rec.id,
                        "status": str(rec.status),
                        "source": rec.source,
                        "destination": dest,
                        "offset": cp.offset if cp is not None else 0,
                        "total": (
                            cp.total if cp is not None and cp.total is not None else rec.total_bytes
                        ),
                        "updated_at": updated,
                        "age_seconds": round(now - updated, 1),
                        "prefix_digest": cp.prefix_digest if cp is not None else None,
                        "digest_algo": cp.digest_algo if cp is not None else None,
                        "ranges": _ranges(cp) if cp is not None else None,
                    }
                )
    if args.output == "csv":  # a cell holds the number of ranges, not their list
        for row in rows:
            row["ranges"] = len(row["ranges"] or ())
    if args.output == "table":
        if not rows:
            print("no unfinished transfers")
            return ExitCode.OK
        for row in rows:
            row["done"] = _done_text(row)
            row["age"] = _age(row["age_seconds"])
            row["prefix"] = _prefix_text(row)
    columns = [
        Column("transfer_id", "ID"),
        Column("status", "STATUS"),
        Column("source", "SOURCE"),
        Column("destination", "DESTINATION"),
        Column("done", "CHECKPOINT", justify="right"),
        Column("total", "SIZE", human_bytes, justify="right"),
        Column("age", "AGE", justify="right"),
        Column("prefix", "PREFIX DIGEST"),
    ]
    emit(rows, columns, args.output)
    return ExitCode.OK


def _transfer_or_fail(store: Any, transfer_id: str) -> Any:
    rec = store.get_transfer(transfer_id)
    if rec is None:
        raise UsageError(f"no transfer with id {transfer_id}", hint="see difpipe checkpoints list")
    return rec


def cmd_checkpoints_show(args: argparse.Namespace) -> int:
    from .core.store import Store

    with Store.open() as store:
        rec = _transfer_or_fail(store, args.id)
        cps = store.get_checkpoints(rec.id)
    transfer = plain(rec.to_dict())
    checkpoints = [_checkpoint_doc(cp) for cp in cps]
    if args.output in ("json", "yaml"):
        emit_doc({"transfer": transfer, "checkpoints": checkpoints}, args.output)
        return ExitCode.OK
    rows = [
        {**cp, "total": cp["total"] if cp["total"] is not None else rec.total_bytes}
        for cp in checkpoints
    ]
    if args.output == "csv":
        for row in rows:
            row["ranges"] = len(row.get("ranges") or ())
        emit(rows, [], "csv")
        return ExitCode.OK
    now = time.time()
    fields = [
        ("id", rec.id),
        ("status", str(rec.status)),
        ("source", rec.source),
        ("destinations", " ".join(rec.destinations)),
        ("size", human_bytes(rec.total_bytes)),
        ("done", human_bytes(rec.bytes_done)),
        ("created", f"{_age(now - rec.created_at)} ago"),
        ("updated", f"{_age(now - rec.updated_at)} ago"),
    ]
    if rec.digest:
        fields.append(("digest", rec.digest))
    if rec.error:
        fields.append(("error", rec.error))
    width = max(len(k) for k, _ in fields) + 2
    sys.stdout.write("".join(f"{k:<{width}}{v}\n" for k, v in fields))
    if rows:
        for row in rows:
            row["done"] = _done_text(row)
            row["age"] = _age(now - row["updated_at"])
            row["prefix"] = _prefix_text(row)
        columns = [
            Column("destination", "DESTINATION"),
            Column("done", "CHECKPOINT", justify="right"),
            Column("total", "SIZE", human_bytes, justify="right"),
            Column("age", "AGE", justify="right"),
            Column("digest_algo", "ALGO"),
            Column("prefix", "PREFIX DIGEST"),
        ]
        emit(rows, columns, "table")
    else:
        print("no checkpoints")
    return ExitCode.OK


def cmd_checkpoints_rm(args: argparse.Namespace) -> int:
    from .core.store import Store

    ids = list(dict.fromkeys(args.ids))
    with Store.open() as store:
        unknown = [i for i in ids if store.get_transfer(i) is None]
        if unknown:
            raise UsageError(
                f"no transfer with id {', '.join(unknown)}; nothing was removed",
                hint="see difpipe checkpoints list",
            )
        for transfer_id in ids:
            store.delete_transfer(transfer_id)
    if args.output in ("json", "yaml"):
        emit_doc({"removed": ids}, args.output)
    elif args.output == "csv":
        emit([{"removed": i} for i in ids], [], "csv")
    else:
        for transfer_id in ids:
            print(f"removed {transfer_id}")
    return ExitCode.OK
