"""The study's report as a small document (headings, paragraphs, lists, tables, figures) written
twice: ``report.md`` (figures as PNG files beside it) and ``report.html`` (one self-contained
file, figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.runs import write_atomic

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1250px; padding: 0 1.5em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #bbb; padding-bottom: .15em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .86em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f1f1f4; } td.n { text-align: right; white-space: nowrap; }
details { margin: .6em 0 1.2em; } summary { cursor: pointer; font-style: italic; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .88em; color: #444; margin-top: .3em; }
.summary { background: #f6f8fb; border: 1px solid #d6dde8; padding: .4em 1.2em; }
code { background: #f2f2f2; padding: 0 .2em; }
"""


_NUMBER = re.compile(r"^(n/a|[+-]?[\d,]*\.?\d+(e[+-]?\d+)?%?)$")


def _cell(text: str) -> str:
    """A table cell; numbers are right-aligned."""
    css = ' class="n"' if _NUMBER.match(text) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, thousands separated."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # nan
        return "n/a"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: list[str], summary: bool = False) -> None:
        self.blocks.append(("bullets", (items, summary)))

    def table(
        self, header: list[str], rows: list[list[Any]], caption: str = "", folded: bool = False
    ) -> None:
        """A table; ``folded`` tables are collapsed under their caption in HTML."""
        cells = [[fmt(x) for x in row] for row in rows]
        self.blocks.append(("table", (header, cells, caption, folded)))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (Path(path), caption)))

    def headings(self) -> list[str]:
        return [text for kind, content in self.blocks if kind == "heading" for text in [content[1]]]

    # ----------------------------------------------------------------- writers

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "heading":
                level, text = content
                lines += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                lines += [content, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in content[0]] + [""]
            elif kind == "table":
                header, rows, caption, _ = content
                if caption:
                    lines += [f"*{caption}*", ""]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "|".join("---" for _ in header) + "|")
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                lines.append("")
            elif kind == "figure":
                path, caption = content
                lines += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        e = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        for kind, content in self.blocks:
            if kind == "heading":
                level, text = content
                anchor = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
                parts.append(f'<h{level} id="{anchor}">{e(text)}</h{level}>')
            elif kind == "paragraph":
                parts.append(f"<p>{e(content)}</p>")
            elif kind == "bullets":
                items, summary = content
                css = ' class="summary"' if summary else ""
                parts.append(f"<ul{css}>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>")
            elif kind == "table":
                header, rows, caption, folded = content
                head = "".join(f"<th>{e(h)}</th>" for h in header)
                body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
                table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                if folded:
                    parts.append(
                        f"<details><summary>{e(caption)} (click to open)</summary>{table}</details>"
                    )
                else:
                    cap = f"<caption>{e(caption)}</caption>" if caption else ""
                    parts.append(table.replace("<table>", f"<table>{cap}", 1))
            elif kind == "figure":
                path, caption = content
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(
                    f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """``report.md`` and ``report.html`` in ``folder`` (figures must be there already)."""
        md = write_atomic(folder / "report.md", self.to_markdown() + "\n")
        page = write_atomic(folder / "report.html", self.to_html() + "\n")
        return md, page
