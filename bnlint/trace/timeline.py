"""What each BatchNorm did over a run, for the picture (`bnlint run --html`).

Recorded only when asked for (`bnlint.trace(timeline=True)`): per BatchNorm layer, its
mode and batch size along the run as run-length segments (a loop of identical steps is
one segment), and on sampled forwards the mean of its running mean and of its running
variance (their drift). The clock is the number of BatchNorm calls the tracer has seen,
one clock for all layers, so layers line up and a finding is placed where it was first
seen. Plain Python data, no torch: the tracer feeds it, `bnlint.report.html` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Per layer, so that a long run stays small (a changing batch size every step would
# otherwise add a segment per step); past the cap the last segment is extended.
MAX_SEGMENTS = 2000
MAX_SAMPLES = 2000


@dataclass
class _Layer:
    class_name: str
    # [first clock, last clock, training, batch size or None]
    segments: list[list[Any]] = field(default_factory=list)
    # [clock, mean of running_mean, mean of running_var]
    samples: list[list[float]] = field(default_factory=list)
    truncated: bool = False


class Timeline:
    """Mode, batch size and running-statistics drift of every BatchNorm layer."""

    def __init__(self) -> None:
        self.clock = 0
        self._layers: dict[str, _Layer] = {}

    def observe(self, path: str, class_name: str, training: bool, batch: int | None) -> None:
        """One BatchNorm call: advances the clock."""
        self.clock += 1
        layer = self._layers.get(path)
        if layer is None:
            layer = self._layers[path] = _Layer(class_name)
        segments = layer.segments
        if segments:
            last = segments[-1]
            if (last[2] == training and last[3] == batch) or len(segments) >= MAX_SEGMENTS:
                if last[2] != training or last[3] != batch:
                    layer.truncated = True
                last[1] = self.clock
                return
        segments.append([self.clock, self.clock, training, batch])

    def sample(self, path: str, mean: float, variance: float) -> None:
        layer = self._layers.get(path)
        if layer is None:
            return
        if len(layer.samples) >= MAX_SAMPLES:
            layer.truncated = True
            return
        layer.samples.append([self.clock, mean, variance])

    def to_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "layers": [
                {
                    "path": path,
                    "class_name": layer.class_name,
                    "segments": [list(segment) for segment in layer.segments],
                    "samples": [list(sample) for sample in layer.samples],
                    "truncated": layer.truncated,
                }
                for path, layer in self._layers.items()
            ],
        }
