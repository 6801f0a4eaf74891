"""BN015's static check: which values count as batch-first sequences, and where the
finding points."""

from __future__ import annotations

from bnlint.registry import default_codes
from tests.conftest import lint

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def model(layers: str, forward: str, signature: str = "self, x") -> str:
    """A module whose `__init__` builds `layers` and whose `forward` runs `forward`
    (one statement per line, written without indentation)."""
    init = "".join(f"        {line}\n" for line in layers.strip().splitlines())
    body = "".join(f"        {line}\n" for line in forward.strip().splitlines())
    return (
        f"{HEADER}class Model(nn.Module):\n    def __init__(self):\n"
        f"        super().__init__()\n{init}    def forward({signature}):\n{body}"
    )


LSTM = "self.lstm = nn.LSTM(16, 32, batch_first=True)\nself.bn = nn.BatchNorm1d(32)"


def findings(source: str) -> list[tuple[int, str]]:
    return [(f.start.line, f.message) for f in lint(source, ["BN015"])]


def test_rule_is_on_by_default() -> None:
    assert "BN015" in default_codes()


def test_finding_points_at_the_batchnorm_constructor_and_names_the_forward_line() -> None:
    source = model(LSTM, "out, _ = self.lstm(x)\nreturn self.bn(out)")
    ((line, message),) = findings(source)
    assert source.splitlines()[line - 1].strip() == "self.bn = nn.BatchNorm1d(32)"
    assert "applied on line 11" in message and "`self.lstm`" in message


def test_output_taken_by_index_zero_is_a_sequence() -> None:
    assert findings(model(LSTM, "return self.bn(self.lstm(x)[0])"))


def test_hidden_state_and_the_whole_tuple_are_not_sequences() -> None:
    assert findings(model(LSTM, "out, h = self.lstm(x)\nreturn self.bn(h[0][-1])")) == []
    assert findings(model(LSTM, "return self.bn(self.lstm(x)[1])")) == []


def test_time_first_rnn_is_silent() -> None:
    layers = "self.lstm = nn.LSTM(16, 32)\nself.bn = nn.BatchNorm1d(32)"
    assert findings(model(layers, "out, _ = self.lstm(x)\nreturn self.bn(out)")) == []


def test_computed_batch_first_is_silent() -> None:
    layers = "self.lstm = nn.LSTM(16, 32, batch_first=flag)\nself.bn = nn.BatchNorm1d(32)"
    assert findings(model(layers, "out, _ = self.lstm(x)\nreturn self.bn(out)")) == []


def test_correct_layouts_are_silent() -> None:
    for use in (
        "self.bn(out.transpose(1, 2)).transpose(1, 2)",
        "self.bn(out.permute(0, 2, 1))",
        "self.bn(out.mT)",
        "self.bn(out.reshape(-1, 32))",
        "self.bn(out.contiguous().view(-1, 32))",
        "self.bn(out[:, -1])",
        "self.bn(out.mean(dim=1))",
        "self.bn(torch.mean(out, 1))",
    ):
        source = model(LSTM, f"out, _ = self.lstm(x)\nreturn {use}")
        assert findings(source) == [], use


def test_shape_keeping_steps_keep_the_sequence() -> None:
    layers = LSTM + "\nself.drop = nn.Dropout(0.1)\nself.fc = nn.Linear(32, 32)"
    for step in (
        "F.relu(out)",
        "self.drop(out)",
        "self.fc(out)",
        "out * mask.unsqueeze(-1)",
        "out.contiguous()",
        "torch.cat([out, out], dim=-1)",
    ):
        source = model(
            layers, f"out, _ = self.lstm(x)\nh = {step}\nreturn self.bn(h)", "self, x, mask"
        )
        assert findings(source), step


def test_branches_must_agree() -> None:
    both = "out, _ = self.lstm(x)\nif flag:\n    out = F.relu(out)\nreturn self.bn(out)"
    assert findings(model(LSTM, both, "self, x, flag"))
    one = "out, _ = self.lstm(x)\nif flag:\n    out = out.transpose(1, 2)\nreturn self.bn(out)"
    assert findings(model(LSTM, one, "self, x, flag")) == []


def test_a_transpose_at_the_end_of_a_loop_reaches_the_next_iteration() -> None:
    loop = (
        "out, _ = self.lstm(x)\nfor _ in range(2):\n"
        "    y = self.bn(out)\n    out = out.transpose(1, 2)"
    )
    assert findings(model(LSTM, loop)) == []


def test_embedding_needs_a_sequence_of_tokens() -> None:
    layers = "self.emb = nn.Embedding(100, 16)\nself.bn = nn.BatchNorm1d(16)"
    assert findings(model(layers, "return self.bn(self.emb(user_id))", "self, user_id")) == []
    assert findings(model(layers, "return self.bn(self.emb(password))", "self, password")) == []
    assert findings(model(layers, "return self.bn(self.emb(token))", "self, token")) == []
    assert findings(model(layers, "return self.bn(self.emb(input_ids))", "self, input_ids"))
    assert findings(model(layers, "return self.bn(self.emb(batch['words']))", "self, batch"))
    assert findings(model(layers, "return self.bn(self.emb(batch.text))", "self, batch"))


def test_padding_idx_alone_does_not_make_a_sequence() -> None:
    # A recommender's target item: one id per sample, padded id 0 for "unknown".
    padded = "self.emb = nn.Embedding(100, 16, padding_idx=0)\nself.bn = nn.BatchNorm1d(16)"
    assert findings(model(padded, "return self.bn(self.emb(item))", "self, item")) == []


def test_transformer_encoder_takes_batch_first_from_its_layer() -> None:
    time_first = (
        "layer = nn.TransformerEncoderLayer(32, 4)\n"
        "self.enc = nn.TransformerEncoder(layer, 2)\nself.bn = nn.BatchNorm1d(32)"
    )
    assert findings(model(time_first, "return self.bn(self.enc(x))")) == []
    batch_first = (
        "self.layer = nn.TransformerEncoderLayer(32, 4, batch_first=True)\n"
        "self.enc = nn.TransformerEncoder(self.layer, num_layers=2)\nself.bn = nn.BatchNorm1d(32)"
    )
    assert findings(model(batch_first, "return self.bn(self.enc(x))"))


def test_attribute_built_two_ways_is_silent() -> None:
    layers = (
        "self.lstm = nn.LSTM(16, 32, batch_first=True)\n"
        "if wide:\n    self.bn = nn.BatchNorm1d(32)\nelse:\n    self.bn = nn.LayerNorm(32)"
    )
    source = model(layers, "out, _ = self.lstm(x)\nreturn self.bn(out)").replace(
        "def __init__(self)", "def __init__(self, wide)"
    )
    assert findings(source) == []


def test_batchnorm_item_after_linear_in_a_sequential_is_reported_with_layernorm_advice() -> None:
    layers = (
        "self.lstm = nn.LSTM(16, 32, batch_first=True)\n"
        "self.head = nn.Sequential(nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU())"
    )
    source = model(layers, "out, _ = self.lstm(x)\nreturn self.head(out)")
    (finding,) = lint(source, ["BN015"])
    line = source.splitlines()[finding.start.line - 1]
    assert finding.start.column == line.index("nn.BatchNorm1d") + 1  # columns count from 1
    assert (
        "nn.LayerNorm(32)" in finding.suggestion and ".transpose(1, 2)`" not in finding.suggestion
    )


def test_suggestion_parenthesises_a_compound_input() -> None:
    layers = (
        "self.attn = nn.MultiheadAttention(32, 4, batch_first=True)\nself.bn = nn.BatchNorm1d(32)"
    )
    (finding,) = lint(model(layers, "return self.bn(x + self.attn(x, x, x)[0])"), ["BN015"])
    assert "`self.bn((x + self.attn(x, x, x)[0]).transpose(1, 2)).transpose(1, 2)`" in (
        finding.suggestion
    )


def test_each_batchnorm_is_reported_once() -> None:
    source = model(LSTM, "out, _ = self.lstm(x)\na = self.bn(out)\nreturn self.bn(out) + a")
    assert len(findings(source)) == 1
