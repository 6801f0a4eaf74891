"""Rule tables generated from the rules' own metadata (`bnlint rules`, the README)."""

from __future__ import annotations

from bnlint.registry import all_rules


def rule_rows() -> list[tuple[str, str, str, str, str, str, str]]:
    return [
        (
            code,
            rule.name,
            rule.severity.value,
            "on" if rule.default_enabled else "off",
            rule.autofix,
            ", ".join(rule.engines),
            rule.summary().replace("|", "\\|"),
        )
        for code, rule in all_rules().items()
    ]


HEADER = ("code", "name", "severity", "default", "autofix", "engines", "what it flags")


def rule_table_markdown() -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rule_rows()]
    return "\n".join(lines)


def rule_table_text() -> str:
    rows = [HEADER[:-1], *(row[:-1] for row in rule_rows())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
