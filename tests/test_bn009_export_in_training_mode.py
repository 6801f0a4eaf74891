"""BN009's static check: which models reach an export, trace or save in training mode."""

from __future__ import annotations

import textwrap

from bnlint.config import RULE_OPTIONS
from bnlint.engine.lint import lint_text
from bnlint.finding import Finding
from bnlint.fix.edits import apply_edits
from bnlint.index import ProjectIndex, summarize_file
from bnlint.registry import rule_for
from tests.conftest import lint

HEADER = """\
import copy
import torch
import torch.nn as nn
import wandb
from mmengine.runner import load_checkpoint


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x))


"""


def findings(body: str) -> list[Finding]:
    found = lint(HEADER + textwrap.dedent(body), ["BN009"])
    assert all(f.code == "BN009" for f in found)
    return found


def lines(body: str) -> list[int]:
    offset = HEADER.count("\n")
    return [f.start.line - offset for f in findings(body)]


def test_trace_after_a_training_helper_is_reported() -> None:
    body = """\
        def train_one_epoch(model, loader):
            model.train()
            for x in loader:
                model(x).mean().backward()

        def main(loader):
            model = Net()
            train_one_epoch(model, loader)
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == [9]


def test_a_helper_that_leaves_the_model_in_eval_reaches_the_export() -> None:
    body = """\
        def evaluate(model, loader):
            model.eval()
            return [model(x) for x in loader]

        def main(loader):
            model = Net()
            evaluate(model, loader)
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == []


def test_train_after_eval_is_reported_again() -> None:
    body = """\
        def main(loader):
            model = Net()
            model.eval()
            scores = [model(x) for x in loader]
            model.train()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == [6]


def test_eval_on_one_branch_only_is_not_enough_to_report() -> None:
    body = """\
        def main(deploy):
            model = Net()
            if deploy:
                model.eval()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == []


def test_eval_in_a_loop_that_may_not_run_is_not_reported() -> None:
    body = """\
        def main(loaders):
            model = Net()
            for loader in loaders:
                model.eval()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == []


def test_eval_on_an_alias_of_the_same_module_reaches_it_but_not_on_a_copy() -> None:
    alias = """\
        def main():
            model = Net().cuda()
            wrapped = nn.DataParallel(model)
            wrapped.eval()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    copied = alias.replace("nn.DataParallel(model)", "copy.deepcopy(model)")
    assert lines(alias) == []
    assert lines(copied) == [5]


def test_no_grad_does_not_count_as_eval() -> None:
    body = """\
        def main():
            model = Net()
            with torch.no_grad():
                traced = torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == [4]


def test_a_call_bnlint_cannot_follow_makes_the_mode_unknown() -> None:
    unknown = """\
        def main():
            model = Net()
            load_checkpoint(model, "net.pth")
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    logged = unknown.replace('load_checkpoint(model, "net.pth")', "wandb.watch(model)")
    assert lines(unknown) == []
    assert lines(logged) == [4]


def test_an_unknown_method_of_the_model_makes_its_mode_unknown() -> None:
    fused = """\
        def main():
            model = Net()
            model.fuse()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    loaded = fused.replace("model.fuse()", 'model.load_state_dict(torch.load("w.pt"))')
    assert lines(fused) == []
    assert lines(loaded) == [4]


def test_parameters_attributes_and_loaded_modules_are_not_judged() -> None:
    body = """\
        def export(model):
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))

        class Exporter:
            def run(self):
                torch.jit.trace(self.model, torch.randn(1, 3, 8, 8))

        def reload():
            model = torch.load("whole.pt")
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == []


def test_save_inside_a_training_loop_is_a_checkpoint_but_not_after_it() -> None:
    body = """\
        def main(loader):
            model = Net()
            for x in loader:
                model(x).mean().backward()
                torch.save(model, "last.pt")
            torch.save(model, "final.pt")
            torch.save(model.state_dict(), "final_weights.pt")
        """
    assert lines(body) == [6]


def test_onnx_export_is_reported_only_with_a_training_mode() -> None:
    body = """\
        def main():
            model = Net()
            x = torch.randn(1, 3, 8, 8)
            torch.onnx.export(model, x, "a.onnx")
            torch.onnx.export(model, x, "b.onnx", training=torch.onnx.TrainingMode.EVAL)
            torch.onnx.export(model, x, "c.onnx", training=torch.onnx.TrainingMode.PRESERVE)
            torch.onnx.export(model, x, "d.onnx", training=torch.onnx.TrainingMode.TRAINING)
        """
    found = findings(body)
    offset = HEADER.count("\n")
    assert [f.start.line - offset for f in found] == [6, 7]
    preserve, training = found
    assert preserve.fix is not None
    assert training.fix is None  # TRAINING switches the model back: eval() would not help
    assert "drop `training=`" in training.suggestion


def test_jit_script_is_not_a_trace() -> None:
    body = """\
        def main():
            model = Net()
            torch.jit.script(model).save("net.pt")
        """
    assert lines(body) == []


def test_a_function_that_switches_a_global_model_silences_module_level_exports() -> None:
    body = """\
        def evaluate():
            model.eval()

        model = Net()
        evaluate()
        torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == []


def test_fix_inserts_eval_at_the_statement_indentation() -> None:
    source = HEADER + textwrap.dedent(
        """\
        def main():
            model = Net()
            with torch.no_grad():
                traced = torch.jit.trace(
                    model, torch.randn(1, 3, 8, 8)
                )
        """
    )
    (finding,) = lint(source, ["BN009"])
    assert finding.fix is not None
    fixed = apply_edits(source, finding.fix.edits)
    assert "    with torch.no_grad():\n        model.eval()\n        traced = " in fixed
    assert f"before line {finding.start.line}" in finding.suggestion


def test_fix_on_a_statement_that_shares_its_line() -> None:
    source = HEADER + 'model = Net()\nif True: torch.save(model, "net.pt")\n'
    (finding,) = lint(source, ["BN009"])
    assert finding.fix is not None
    fixed = apply_edits(source, finding.fix.edits)
    assert fixed.endswith('if True: model.eval(); torch.save(model, "net.pt")\n')
    compile(fixed, "fixed.py", "exec")


def test_a_model_class_from_another_file_of_the_project() -> None:
    models = HEADER
    script = textwrap.dedent(
        """\
        import torch
        from models import Net

        def main():
            model = Net()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8)).save("net.pt")
        """
    )
    index = ProjectIndex.from_summaries(
        "/project",
        {
            "/project/models.py": summarize_file("/project/models.py", models),
            "/project/export.py": summarize_file("/project/export.py", script),
        },
    )
    rule = rule_for("BN009")
    assert rule is not None
    found = lint_text("/project/export.py", script, [rule], index, dict(RULE_OPTIONS))
    assert [f.start.line for f in found] == [6]


def test_train_after_a_call_of_unknown_effect_makes_the_mode_known_again() -> None:
    body = """\
        def main():
            model = Net()
            load_checkpoint(model, "net.pth")
            model.train()
            torch.jit.trace(model, torch.randn(1, 3, 8, 8))
        """
    assert lines(body) == [5]


def test_a_training_loop_runs_and_leaves_the_mode_of_its_last_step() -> None:
    body = """\
        def train(model, loader):
            model.train()
            for x in loader:
                model(x).mean().backward()

        def validate(model, loader):
            model.eval()

        def main(loader, epochs):
            model = Net()
            for epoch in range(epochs):
                train(model, loader)
                validate(model, loader)
            torch.save(model, "after_validation.pt")
            for epoch in range(epochs):
                train(model, loader)
            torch.save(model, "after_training.pt")
        """
    assert lines(body) == [17]


def test_onnx_training_mode_is_reported_even_after_eval() -> None:
    body = """\
        def main():
            model = Net()
            model.eval()
            x = torch.randn(1, 3, 8, 8)
            torch.onnx.export(model, x, "a.onnx", training=torch.onnx.TrainingMode.PRESERVE)
            torch.onnx.export(model, x, "b.onnx", training=torch.onnx.TrainingMode.TRAINING)
        """
    assert lines(body) == [6]
