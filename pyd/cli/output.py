"""How C{pyd fleet} and C{pyd hosts} print: tables, JSON rows, host-prefixed streams (layer: cli).

Every fleet command produces, per host, a list of rows (dicts) or an error. C{--format table}
prints one table with a HOST column; C{--format json} prints one JSON object per line, each with a
C{Host} field, so C{jq} and scripts can read it. The summary ("N hosts ok, M failed") goes to
stderr so that stdout stays machine-readable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import attrs

FORMATS = ("table", "json")

# One column of a table: its header and the row key it shows.
Column = tuple[str, str]


@attrs.frozen
class HostResult:
    """What one host answered: rows, or the reason it could not answer.

    A row with a non-empty C{Error} (one container that could not be stopped, say) is printed
    like the others but makes the host count as failed.
    """

    host: str
    rows: list[dict[str, Any]] = attrs.field(factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the host answered and every row succeeded."""
        return self.error is None and not any(r.get("Error") for r in self.rows)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, like the docker CLI's tables."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return ",".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}={_cell(x)}" for k, x in v.items())
    return str(v)


def render_table(columns: Sequence[Column], results: Sequence[HostResult]) -> list[str]:
    """One table with a HOST column first; a host that failed gets one row with its error in the
    first column after HOST, and rows with their own error show it in a trailing ERROR column."""
    with_error = any(r.get("Error") for res in results for r in res.rows)
    header = ["HOST", *(h for h, _ in columns)] + (["ERROR"] if with_error else [])
    rows: list[list[str]] = [header]
    for res in sorted(results, key=lambda r: r.host):
        if res.error is not None:
            rows.append([res.host, f"error: {res.error}"] + [""] * (len(header) - 2))
            continue
        for r in res.rows:
            line = [res.host, *(_cell(r.get(k)) for _, k in columns)]
            if with_error:
                line.append(_cell(r.get("Error")))
            rows.append(line)
    return table(rows)


def json_rows(results: Sequence[HostResult]) -> list[str]:
    """One compact JSON object per row (or per failed host), each with C{Host} first."""
    out = []
    for res in sorted(results, key=lambda r: r.host):
        if res.error is not None:
            out.append(json.dumps({"Host": res.host, "Error": res.error}))
            continue
        out.extend(json.dumps({"Host": res.host, **r}) for r in res.rows)
    return out


def render(fmt: str, columns: Sequence[Column], results: Sequence[HostResult]) -> list[str]:
    """The lines C{--format fmt} prints for these results."""
    if fmt == "json":
        return json_rows(results)
    return render_table(columns, results)


def render_rows(
    fmt: str, columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Rows that belong to no host (C{pyd hosts ls}): a plain table, or one JSON object each."""
    if fmt == "json":
        return [json.dumps(dict(r)) for r in rows]
    return table([[h for h, _ in columns], *([_cell(r.get(k)) for _, k in columns] for r in rows)])


def summary(results: Sequence[HostResult]) -> str:
    """C{N hosts ok, M failed} (naming the failed ones)."""
    ok = [r.host for r in results if r.ok]
    failed = sorted(r.host for r in results if not r.ok)
    line = f"{len(ok)} host{'s' if len(ok) != 1 else ''} ok, {len(failed)} failed"
    return line + (f" ({', '.join(failed)})" if failed else "")


@attrs.define
class StreamPrinter:
    """Prints lines of several hosts as they arrive, each prefixed by its host.

    Table format: C{HOST | text}, the host names padded to one width so the text lines up
    (docker compose does the same for services). JSON format: one object per line with C{Host}.
    """

    fmt: str
    hosts: Sequence[str]
    out: TextIO
    err: TextIO

    def _prefix(self, host: str) -> str:
        width = max((len(h) for h in self.hosts), default=0)
        return f"{host.ljust(width)} | "

    def line(self, host: str, text: str, record: Mapping[str, Any], stderr: bool = False) -> None:
        """One line from C{host}: C{text} for tables, C{record} for JSON."""
        if self.fmt == "json":
            print(json.dumps({"Host": host, **record}), file=self.out, flush=True)
        else:
            print(self._prefix(host) + text, file=self.err if stderr else self.out, flush=True)

    def failure(self, host: str, error: str) -> None:
        """A host that failed: on stderr for tables, as an C{Error} row for JSON."""
        if self.fmt == "json":
            print(json.dumps({"Host": host, "Error": error}), file=self.out, flush=True)
        else:
            print(self._prefix(host) + f"error: {error}", file=self.err, flush=True)
