"""A run's picture as one self-contained HTML page (`bnlint run --html report.html`).

Per BatchNorm layer: its mode (training / eval) and batch size along the run, the drift
of its running statistics (the mean of its running mean and of its running variance on
sampled forwards), and each finding as a marker where it was first seen, linked to the
findings table. Inline SVG and CSS only: no script, no font, no request to any server.

Reads findings and the tracer's timeline data (plain JSON-like values), nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from bnlint.finding import Finding, RunSummary

WIDTH = 900
PAD = 12
MODE_HEIGHT = 34
DRIFT_HEIGHT = 60

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2125; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin: 18px 0 4px; }
h2 small { color: #5f6b76; font-weight: normal; }
svg { display: block; background: #f6f8fa; border: 1px solid #d8dee4; }
.segment.train { fill: #4c8bf5; } .segment.eval { fill: #9aa5b1; }
.batch { fill: none; stroke: #1d2125; stroke-width: 1.5; }
.drift-mean { fill: none; stroke: #d9480f; stroke-width: 1.5; }
.drift-var { fill: none; stroke: #2b8a3e; stroke-width: 1.5; }
.marker { fill: #c92a2a; stroke: white; stroke-width: 1; }
.legend span { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; vertical-align: middle; }
table { border-collapse: collapse; margin-top: 8px; }
td, th { border: 1px solid #d8dee4; padding: 4px 8px; text-align: left; vertical-align: top; }
tr:target { background: #fff3bf; }
"""


def _x(clock: float, end: int) -> float:
    """The left edge of BatchNorm call `clock`'s cell (calls 1..end fill the width)."""
    return PAD + (min(max(clock, 1), end + 1) - 1) / end * (WIDTH - 2 * PAD)


def _centre(clock: float, end: int) -> float:
    return _x(clock + 0.5, end)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _marker(anchor: Mapping[str, Any], end: int, target: str | None, y: float) -> str:
    x = _centre(float(anchor["clock"]), end)
    title = escape(
        f"{anchor['code']} (first at BatchNorm call {anchor['clock']}): {anchor['message']}"
    )
    path = f"M{x:.1f},{y + 10:.1f} l-6,-10 h12 z"
    marker = (
        f'<path class="marker" data-code="{escape(anchor["code"])}" '
        f'data-clock="{int(anchor["clock"])}" d="{path}"><title>{title}</title></path>'
    )
    return f'<a href="#{target}">{marker}</a>' if target else marker


def _mode_svg(layer: Mapping[str, Any], end: int, markers: list[str]) -> str:
    parts = []
    segments = layer["segments"]
    largest = max((segment[3] or 0 for segment in segments), default=0) or 1
    points = []
    for first, last, training, batch in segments:
        mode = "train" if training else "eval"
        x0 = _x(first, end)
        width = max(_x(last + 1, end) - x0, 1.0)
        label = f"BatchNorm calls {first}-{last}: {'training' if training else 'eval'}"
        label += f", batch {batch}" if batch is not None else ""
        parts.append(
            f'<rect class="segment {mode}" data-mode="{mode}" data-batch="{batch or ""}" '
            f'data-start="{first}" data-end="{last}" x="{x0:.1f}" y="12" '
            f'width="{width:.1f}" height="{MODE_HEIGHT - 14}"><title>{escape(label)}</title></rect>'
        )
        if batch is not None:
            y = MODE_HEIGHT - 3 - (MODE_HEIGHT - 16) * batch / largest
            points += [f"{x0:.1f},{y:.1f}", f"{x0 + width:.1f},{y:.1f}"]
    if points:
        parts.append(f'<polyline class="batch" points="{" ".join(points)}"/>')
    return (
        f'<svg class="modes" width="{WIDTH}" height="{MODE_HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {MODE_HEIGHT}" role="img" '
        f'aria-label="mode and batch size of {escape(layer["path"])}">'
        + "".join(parts)
        + "".join(markers)
        + "</svg>"
    )


def _drift_svg(layer: Mapping[str, Any], end: int) -> str:
    samples = layer["samples"]
    if not samples:
        return '<p class="no-drift">no running-statistics sample (sampling off)</p>'
    lines = []
    for index, css in ((1, "drift-mean"), (2, "drift-var")):
        values = [sample[index] for sample in samples]
        low, high = min(values), max(values)
        span = high - low or 1.0
        points = " ".join(
            f"{_centre(sample[0], end):.1f},"
            f"{DRIFT_HEIGHT - 6 - (DRIFT_HEIGHT - 12) * (sample[index] - low) / span:.1f}"
            for sample in samples
        )
        name = "running mean (mean)" if index == 1 else "running variance (mean)"
        title = (
            f"{name}: {_number(values[0])} → {_number(values[-1])} "
            f"(min {_number(low)}, max {_number(high)})"
        )
        lines.append(
            f'<polyline class="{css}" data-first="{_number(values[0])}" '
            f'data-last="{_number(values[-1])}" points="{points}">'
            f"<title>{escape(title)}</title></polyline>"
        )
    return (
        f'<svg class="drift" width="{WIDTH}" height="{DRIFT_HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {DRIFT_HEIGHT}" role="img" '
        f'aria-label="running statistics of {escape(layer["path"])}">' + "".join(lines) + "</svg>"
    )


def render_html(
    findings: Sequence[Finding], summary: RunSummary, timeline: Mapping[str, Any]
) -> str:
    """The page; `timeline` is `Tracer.timeline_report()`."""
    end = max(int(timeline.get("clock", 0)), 1)
    layers = list(timeline.get("layers", []))
    known = {layer["path"] for layer in layers}
    rows = {(f.code, f.path, f.start.line): index for index, f in enumerate(findings)}
    markers: dict[str, list[str]] = {}
    for anchor in timeline.get("anchors", []):
        index = rows.get((anchor["code"], anchor["path"], anchor["line"]))
        target = f"finding-{index}" if index is not None else None
        row = anchor["layer"] if anchor["layer"] in known else ""
        markers.setdefault(row, []).append(_marker(anchor, end, target, 0))
    body = [
        "<h1>bnlint run: what the tracer saw</h1>",
        f'<p class="overview" data-calls="{int(timeline.get("clock", 0))}" '
        f'data-layers="{len(layers)}" data-findings="{len(findings)}">'
        f"{int(timeline.get('clock', 0))} BatchNorm calls in {len(layers)} "
        f"layer{'s' if len(layers) != 1 else ''}; "
        f"{len(findings)} finding{'s' if len(findings) != 1 else ''}. The horizontal axis "
        "counts BatchNorm calls over the whole run (one clock for every layer).</p>",
        '<p class="legend"><span><i class="swatch" style="background:#4c8bf5"></i> training'
        '</span><span><i class="swatch" style="background:#9aa5b1"></i> eval</span>'
        "<span>black line: batch size</span><span>"
        '<i class="swatch" style="background:#d9480f"></i> running mean</span><span>'
        '<i class="swatch" style="background:#2b8a3e"></i> running variance (each scaled '
        'to its own range)</span><span><i class="swatch" style="background:#c92a2a"></i> '
        "finding, where first seen</span></p>",
        '<section id="timeline">',
    ]
    if markers.get(""):
        body.append('<div class="layer run" data-path="">')
        body.append("<h2>the run <small>findings not tied to one layer</small></h2>")
        body.append(
            f'<svg class="modes" width="{WIDTH}" height="{MODE_HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {MODE_HEIGHT}">' + "".join(markers[""]) + "</svg></div>"
        )
    for layer in layers:
        path = escape(layer["path"])
        truncated = " (long run: detail capped)" if layer.get("truncated") else ""
        batches = sorted({segment[3] for segment in layer["segments"] if segment[3] is not None})
        if batches:
            low, high = batches[0], batches[-1]
            truncated = f" · batch {low}" + (f"-{high}" if high != low else "") + truncated
        body.append(
            f'<div class="layer" data-path="{path}" data-class="{escape(layer["class_name"])}">'
        )
        body.append(f"<h2>{path} <small>{escape(layer['class_name'])}{truncated}</small></h2>")
        body.append(_mode_svg(layer, end, markers.get(layer["path"], [])))
        body.append(_drift_svg(layer, end))
        body.append("</div>")
    body.append("</section>")
    body.append('<section id="findings"><h2>Findings</h2>')
    if findings:
        body.append("<table><tr><th>code</th><th>where</th><th>message</th><th>count</th></tr>")
        for index, finding in enumerate(findings):
            notes = "".join(f"<br><small>{escape(note)}</small>" for note in finding.notes)
            body.append(
                f'<tr id="finding-{index}" data-code="{escape(finding.code)}">'
                f"<td>{escape(finding.code)}</td>"
                f"<td>{escape(finding.path)}:{finding.start.line}</td>"
                f"<td>{escape(finding.message)}<br><small>{escape(finding.suggestion)}</small>"
                f"{notes}</td><td>{finding.count}</td></tr>"
            )
        body.append("</table>")
    else:
        body.append('<p class="no-findings">No BatchNorm misuse seen.</p>')
    body.append(
        f"<p><small>bnlint {escape(summary.tool_version)}, working directory "
        f"{escape(summary.working_directory)}</small></p></section>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>bnlint run report</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
