"""The queue benchmark's table (measure | exportd | baseline | ratio), printed and written as
JSON and Markdown beside the other benchmarks' results."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.queue_measures import Measure
from bench.report import DISTURBED_CORES, markdown_table

HEADER = ("measure", "exportd", "baseline", "ratio")


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def rows(measures: Sequence[Measure]) -> list[list[str]]:
    out = []
    for measure in measures:
        for r in measure.table():
            ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            out.append(
                [
                    f"{measure.title}: {r['row']}",
                    _cell(r["exportd"], r["fmt"]),
                    _cell(r["baseline"], r["fmt"]),
                    ratio,
                ]
            )
    return out


def text_table(measures: Sequence[Measure]) -> str:
    lines = []
    for measure in measures:
        body = [row[1:] for row in rows([measure])]
        labels = [r["row"] for r in measure.table()]
        width = max([len(label) for label in labels] + [44])
        cells = [max([len(c[i]) for c in body] + [len(HEADER[i + 1])]) for i in range(3)]
        lines.append(measure.title)
        head = [f"  {'':<{width}}", *(f"{h:>{w}}" for h, w in zip(HEADER[1:], cells, strict=True))]
        lines.append("  ".join(head))
        for label, row in zip(labels, body, strict=True):
            parts = [f"  {label:<{width}}", *(f"{c:>{w}}" for c, w in zip(row, cells, strict=True))]
            lines.append("  ".join(parts))
        for side in measure.sides.values():
            lines += [f"  ! {side.label}: {error}" for error in side.errors]
        lines += [f"  ! disturbed: {d}" for d in measure.disturbed(DISTURBED_CORES)]
        lines.append("")
    return "\n".join(lines)


def markdown(result: dict[str, Any], measures: Sequence[Measure]) -> str:
    meta = result["meta"]
    parts = [
        f"# exportd queue benchmark ({meta['mode']})",
        "",
        "\n".join(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "Medians of the runs; each round runs every side once, the baseline first. Ratio = "
        "exportd ÷ baseline. CPU is user + system seconds of every process in the group "
        "(PostgreSQL: the postmaster and every backend; load: the load processes).",
        "",
    ]
    for measure in measures:
        parts += [f"## {measure.title}", ""]
        for name, side in measure.sides.items():
            parts.append(f"- {name}: {side.label} ({len(side.runs)} runs)")
            parts += [f"  - failed: {error}" for error in side.errors]
        parts += [f"- note: {note}" for note in measure.notes]
        parts += [f"- disturbed: {d}" for d in measure.disturbed(DISTURBED_CORES)]
        parts += [f"- took {measure.seconds:.0f} s", ""]
        body = [
            [r["row"], *row[1:]] for r, row in zip(measure.table(), rows([measure]), strict=True)
        ]
        parts += [markdown_table(HEADER, body), ""]
    return "\n".join(parts)


def write(
    result: dict[str, Any], measures: Sequence[Measure], out_dir: Path, stem: str
) -> tuple[Path, Path]:
    """`stem`.json and `stem`.md in `out_dir`, each through a .tmp file and a rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / f"{stem}.json", out_dir / f"{stem}.md")
    texts = (json.dumps(result, indent=2, default=str) + "\n", markdown(result, measures))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
