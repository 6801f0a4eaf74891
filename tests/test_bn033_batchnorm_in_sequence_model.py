"""BN033: BatchNorm1d in a class that also holds a recurrent/attention layer."""

from __future__ import annotations

from bnlint.registry import default_codes
from tests.conftest import lint

HEADER = "import torch\nimport torch.nn as nn\n"


def model(layers: str, forward: str) -> str:
    init = "".join(f"        {line}\n" for line in layers.strip().splitlines())
    body = "".join(f"        {line}\n" for line in forward.strip().splitlines())
    return (
        f"{HEADER}class Model(nn.Module):\n    def __init__(self):\n"
        f"        super().__init__()\n{init}    def forward(self, x):\n{body}"
    )


GRU = "self.gru = nn.GRU(16, 32, batch_first=True)\nself.bn = nn.BatchNorm1d(32)"


def codes(source: str) -> list[int]:
    return [f.start.line for f in lint(source, ["BN033"])]


def test_rule_is_off_by_default() -> None:
    assert "BN033" not in default_codes()


def test_batchnorm_over_all_positions_of_a_recurrent_output_is_reported() -> None:
    source = model(GRU, "out, _ = self.gru(x)\nreturn self.bn(out.transpose(1, 2))")
    (finding,) = lint(source, ["BN033"])
    assert "`self.gru` (GRU(batch_first=True), line 6)" in finding.message
    assert "nn.LayerNorm(32)" in finding.suggestion


def test_batchnorm_after_the_time_axis_is_reduced_is_silent() -> None:
    for use in (
        "self.bn(out[:, -1])",
        "self.bn(out.mean(dim=1))",
        "self.bn(out.max(1).values)",
        "self.bn(h[-1])",
    ):
        assert codes(model(GRU, f"out, h = self.gru(x)\nreturn {use}")) == [], use


def test_a_reduction_bound_to_a_name_is_seen_through() -> None:
    forward = "out, _ = self.gru(x)\npooled = out.mean(dim=1)\nreturn self.bn(pooled)"
    assert codes(model(GRU, forward)) == []
    forward = "out, _ = self.gru(x)\npooled = out\nreturn self.bn(pooled.transpose(1, 2))"
    assert codes(model(GRU, forward)) != []


def test_one_unreduced_call_is_enough() -> None:
    forward = "out, _ = self.gru(x)\na = self.bn(out[:, -1])\nreturn self.bn(out.transpose(1, 2))"
    assert len(codes(model(GRU, forward))) == 1


def test_a_class_with_a_conv1d_is_silent() -> None:
    layers = GRU + "\nself.conv = nn.Conv1d(32, 32, 3, padding=1)"
    forward = "out, _ = self.gru(x)\nreturn self.bn(self.conv(out.transpose(1, 2)))"
    assert codes(model(layers, forward)) == []


def test_sequence_layer_that_is_never_called_does_not_count() -> None:
    assert codes(model(GRU, "return self.bn(x)")) == []


def test_an_embedding_alone_is_not_a_sequence_model() -> None:
    padded = "self.emb = nn.Embedding(100, 32, padding_idx=0)\nself.bn = nn.BatchNorm1d(32)"
    assert codes(model(padded, "return self.bn(self.emb(x))")) == []


def test_output_picked_from_the_layer_tuple_is_not_a_reduction() -> None:
    assert codes(model(GRU, "out = self.gru(x)[0]\nreturn self.bn(out.transpose(1, 2))")) != []
    assert codes(model(GRU, "return self.bn(self.gru(x)[0].mT)")) != []


def test_concatenated_reductions_are_reduced() -> None:
    forward = "out, h = self.gru(x)\nreturn self.bn(torch.cat([out[:, -1], out.mean(1)], dim=1))"
    assert codes(model(GRU, forward)) == []


def test_batchnorm2d_is_not_this_rule() -> None:
    layers = "self.attn = nn.MultiheadAttention(32, 4)\nself.bn = nn.BatchNorm2d(32)"
    assert codes(model(layers, "return self.attn(self.bn(x), x, x)")) == []
