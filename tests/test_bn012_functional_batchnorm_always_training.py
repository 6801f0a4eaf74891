from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.fix.edits import apply_edits
from bnlint.index import ProjectIndex
from bnlint.registry import default_codes, rule_for
from tests.conftest import lint

SOURCE = (
    "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
    "        return F.batch_norm(x, self.rm, self.rv, training=True)\n"
)


def test_rule_is_off_by_default() -> None:
    assert "BN012" not in default_codes()


def test_transductive_option_silences_it() -> None:
    rule = rule_for("BN012")
    assert rule is not None
    options = {**RULE_OPTIONS, "transductive-batchnorm": True}
    assert lint_text("m.py", SOURCE, [rule], ProjectIndex.empty(), options) == []
    assert len(lint(SOURCE, ["BN012"])) == 1


def test_nested_function_inside_forward_is_not_forward() -> None:
    source = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
        "        def helper(y):\n            return F.batch_norm(y, rm, rv, training=True)\n"
        "        return helper(x)\n"
    )
    assert lint(source, ["BN012"]) == []


def test_async_forward_is_a_forward() -> None:
    source = SOURCE.replace("    def forward", "    async def forward")
    assert [f.start.line for f in lint(source, ["BN012"])] == [4]


def test_fix_replaces_only_the_literal_and_keeps_the_call_as_written() -> None:
    source = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x):\n"
        "        return F.batch_norm(\n            x, self.rm, self.rv,  # buffers\n"
        "            training=True,\n        )\n"
    )
    (finding,) = lint(source, ["BN012"])
    assert finding.fix is not None
    fixed = apply_edits(source, finding.fix.edits)
    assert fixed == source.replace("training=True", "training=self.training")


def test_positional_training_before_unpacked_arguments_is_known() -> None:
    source = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x, *rest):\n"
        "        return F.batch_norm(x, self.rm, self.rv, None, None, True, *rest)\n"
    )
    assert [(f.start.line, f.start.column) for f in lint(source, ["BN012"])] == [(4, 62)]


def test_unpacked_arguments_before_training_hide_its_position() -> None:
    source = (
        "import torch.nn.functional as F\nclass B:\n    def forward(self, x, *rest):\n"
        "        return F.batch_norm(x, *rest, None, True)\n"
    )
    assert lint(source, ["BN012"]) == []
