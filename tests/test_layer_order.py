"""bnlint.index.layer_order: edges from loop-built containers and from `forward` paths
with optional layers."""

from __future__ import annotations

import ast
import textwrap

from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.layer_order import OrderedEdge, appended_edges, reaching_edges


def _edges(source: str, which: str) -> list[tuple[str, str, bool]]:
    text = textwrap.dedent(source)
    index = ProjectIndex.from_summaries("/project", {"m.py": summarize_file("m.py", text)})
    find = appended_edges if which == "appended" else reaching_edges
    return [
        (
            (edge.producer["call"] or "").rsplit(".", 1)[-1],
            (edge.consumer["call"] or "").rsplit(".", 1)[-1],
            isinstance(edge, OrderedEdge) and edge.next_pass,
        )
        for edge in find(index, "m.py", ast.parse(text), text)
    ]


LOOP = """
import torch.nn as nn

def build(widths):
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers.append(nn.BatchNorm1d(a))
        layers.append(nn.Linear(a, b))
        layers.append(nn.Dropout(0.1))
    return nn.Sequential(*layers)
"""


def test_last_layer_of_a_pass_feeds_the_first_of_the_next() -> None:
    assert _edges(LOOP, "appended") == [
        ("BatchNorm1d", "Linear", False),
        ("Linear", "Dropout", False),
        ("Dropout", "BatchNorm1d", True),
    ]


def test_list_made_afresh_each_pass_does_not_wrap() -> None:
    source = LOOP.replace("    layers = []\n", "").replace(
        "zip(widths, widths[1:]):\n", "zip(widths, widths[1:]):\n        layers = []\n"
    )
    assert ("Dropout", "BatchNorm1d", True) not in _edges(source, "appended")


def test_add_module_on_an_empty_sequential_and_branches() -> None:
    source = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self, flag):
            super().__init__()
            self.body = nn.Sequential()
            for i in range(3):
                if flag:
                    self.body.add_module(f"d{i}", nn.Dropout(0.2))
                else:
                    self.body.add_module(f"b{i}", nn.BatchNorm1d(8))
    """
    # The two sides of one `if` never follow each other.
    assert _edges(source, "appended") == []


def test_list_not_made_into_a_sequential_has_no_order() -> None:
    source = LOOP.replace("return nn.Sequential(*layers)", "return nn.ModuleList(layers)")
    assert _edges(source, "appended") == []


def test_forward_path_through_optional_layers() -> None:
    source = """
    import torch.nn as nn

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            if self.drop is not None:
                x = self.drop(x)
            if self.bn is not None:
                x = self.bn(x)
            return x
    """
    assert _edges(source, "reaching") == [("Dropout", "BatchNorm1d", False)]


def test_output_kept_for_later_is_not_a_forward_edge() -> None:
    source = """
    import torch.nn as nn

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            h = self.drop(x)
            y = self.bn(h)
            return h + y
    """
    assert _edges(source, "reaching") == []


FUNCTIONAL = """
import torch.nn as nn
import torch.nn.functional as F

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = F.dropout(x, 0.2, training=self.training)
        STEP
        return x
"""


def _functional(step: str) -> list[tuple[str, str]]:
    from bnlint.index.layer_order import functional_dropout_edges

    text = textwrap.dedent(FUNCTIONAL).replace("STEP", step)
    index = ProjectIndex.from_summaries("/project", {"m.py": summarize_file("m.py", text)})
    return [
        (edge.producer["call"], edge.names[1])
        for edge in functional_dropout_edges(index, "m.py", ast.parse(text), text)
    ]


def test_functional_dropout_read_next_by_a_batchnorm_call() -> None:
    assert _functional("x = F.relu(self.bn(x))") == [("torch.nn.functional.dropout", "bn")]


def test_functional_dropout_rebound_or_shared_is_not_an_edge() -> None:
    assert _functional("x = self.fc(x)\n        x = self.bn(x)") == [
        ("torch.nn.functional.dropout", "fc")
    ]
    assert _functional("x = self.bn(x) + x") == []
    assert _functional("y = 0\n        x = x * 2\n        x = self.bn(x)") == []
