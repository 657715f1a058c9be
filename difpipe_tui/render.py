"""Printing results for people (rich tables) and for programs (JSON, YAML, CSV)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "yaml", "csv")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: Callable[[Any], str] = lambda v: "" if v is None else str(v)
    justify: str = "left"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def join(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    fmt: str,
    *,
    title: str | None = None,
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    if fmt == "json":
        json.dump(list(rows), out, indent=2, default=str)
        out.write("\n")
    elif fmt == "yaml":
        import yaml  # only here: the console imports this module and never prints YAML

        yaml.safe_dump(list(rows), out, sort_keys=False, default_flow_style=False)
    elif fmt == "csv":
        keys = list(rows[0].keys()) if rows else [c.key for c in columns]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(keys)
        for row in rows:
            writer.writerow([_csv_cell(row.get(k)) for k in keys])
    else:
        table = Table(title=title, header_style="bold", expand=False)
        for col in columns:
            table.add_column(col.title, justify=col.justify, overflow="fold")  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*(col.fmt(row.get(col.key)) for col in columns))
        Console(file=out, soft_wrap=False).print(table)


def emit_doc(data: Any, fmt: str, out: TextIO | None = None) -> None:
    """A single document (a dict) in JSON or YAML; tables fall back to indented JSON."""
    out = out or sys.stdout
    if fmt == "yaml":
        import yaml

        yaml.safe_dump(data, out, sort_keys=False)
    else:
        json.dump(data, out, indent=2, default=str)
        out.write("\n")


def to_text(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str) -> str:
    buf = io.StringIO()
    emit(rows, columns, fmt, out=buf)
    return buf.getvalue()


def plain(data: Any) -> Any:
    """JSON-ready data (enums as strings, tuples as lists), also for YAML's safe dumper."""
    return json.loads(json.dumps(data, default=str))
