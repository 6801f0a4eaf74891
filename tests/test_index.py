"""The project index on small multi-file projects: which classes are BN models (through
aliases and base classes in other files, and known factories), what feeds what in
`forward`, and which mode reaches a call."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bnlint.config import Selection, load_settings
from bnlint.engine.run import RunResult, check_paths
from bnlint.index import ProjectIndex, mode_before, summarize_file
from bnlint.index.graph import direct_edges
from tests.conftest import FIXTURES


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


MODELS = """
    from torch import nn
    from torch.nn import BatchNorm2d as BN
    import torch.nn as tnn

    class Base(nn.Module):
        pass

    class Block(Base):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(3, 8, 3)
            self.bn = BN(8)

        def forward(self, x):
            return self.bn(self.conv(x))

    class Net(Block):
        pass

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.norm = nn.LayerNorm(2)
"""


def test_bn_model_found_through_aliases_and_a_base_class_in_another_file() -> None:
    index = index_of(
        {
            "/project/pkg/models.py": MODELS,
            "/project/pkg/nets.py": """
                from pkg.models import Net

                class Wide(Net):
                    pass
            """,
        }
    )
    assert index.class_kind("/project/pkg/models.py", "Net") == "bn"
    assert index.class_kind("/project/pkg/nets.py", "Wide") == "bn"
    assert index.class_kind("/project/pkg/models.py", "Plain") == "none"


def test_model_built_in_another_file_is_a_bn_model_in_the_script() -> None:
    index = index_of(
        {
            "/project/pkg/models.py": MODELS,
            "/project/train.py": """
                import torch
                from pkg.models import Net as Model

                model = torch.nn.DataParallel(Model().cuda())
            """,
        }
    )
    assert index.key_kind("/project/train.py", "<module>", "model") == "bn"


def test_known_factories_and_bn_free_architectures() -> None:
    index = index_of(
        {
            "/project/s.py": """
                import timm
                import torchvision
                from torchvision.models.detection import fasterrcnn_resnet50_fpn
                from torchvision.ops import FrozenBatchNorm2d

                a = torchvision.models.resnet50()
                b = timm.create_model("efficientnet_b0")
                c = torchvision.models.vit_b_16()
                d = fasterrcnn_resnet50_fpn()
                e = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d)
            """
        }
    )
    kinds = {key: index.key_kind("/project/s.py", "<module>", key) for key in "abcde"}
    assert kinds == {"a": "bn", "b": "bn", "c": "none", "d": "frozen", "e": "frozen"}


def test_builder_looked_up_by_a_written_out_name_is_that_builder() -> None:
    index = index_of(
        {
            "/project/zoo/vits.py": """
                from torch import nn

                def vit_tiny(patch_size=16):
                    return nn.Sequential(nn.Linear(48, 192), nn.LayerNorm(192))
            """,
            "/project/s.py": """
                import torchvision
                import torchvision.models as models
                from zoo import vits

                a = getattr(torchvision.models, "resnet18")(weights=None)
                b = models.__dict__["mobilenet_v2"]()
                c = vits.__dict__["vit_tiny"](patch_size=8)
                d = getattr(models, "vit_b_16")()
            """,
        }
    )
    kinds = {key: index.key_kind("/project/s.py", "<module>", key) for key in "abcd"}
    assert kinds == {"a": "bn", "b": "bn", "c": "none", "d": "none"}


def test_builder_picked_by_a_run_time_name_stays_unknown_whatever_its_keywords() -> None:
    # `zero_init_residual` is a ResNet parameter, but torchvision's ConvNeXt (no BN)
    # takes and ignores any keyword, so the call does not narrow the pick to ResNets.
    index = index_of(
        {
            "/project/s.py": """
                import torchvision

                a = getattr(torchvision.models, arch)(zero_init_residual=True)
                b = torchvision.models.__dict__[arch](pretrained=True)
                c = getattr(torchvision.models, "resnet18", None)()
            """
        }
    )
    assert [index.key_kind("/project/s.py", "<module>", key) for key in "abc"] == [None] * 3


def test_unknown_models_stay_unknown() -> None:
    index = index_of(
        {
            "/project/s.py": """
                import torch
                import timm
                from somewhere import build_model

                a = build_model(cfg)
                b = torch.load("model.pt")
                c = timm.create_model(args.arch)
            """
        }
    )
    assert [index.key_kind("/project/s.py", "<module>", key) for key in "abc"] == [None] * 3


def _edges(text: str) -> set[tuple[str, str]]:
    index = index_of({"/project/m.py": text})
    return {edge.names for edge in direct_edges(index, "/project/m.py")}


def test_forward_edges_follow_data_flow_not_declaration_order() -> None:
    edges = _edges(
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.other = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)

            def forward(self, x):
                y = self.other(x)
                return self.bn(y) + self.conv(x)
        """
    )
    assert ("other", "bn") in edges
    assert ("conv", "bn") not in edges


def test_skip_connection_is_not_a_direct_edge() -> None:
    edges = _edges(
        """
        import torch.nn as nn

        class Res(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 3, padding=1)
                self.bn = nn.BatchNorm2d(8)

            def forward(self, x):
                y = self.conv(x)
                return self.bn(y) + y
        """
    )
    assert ("conv", "bn") not in edges


def _mode(text: str, function: str, line: int, key: str = "model") -> str | None:
    index = index_of({"/project/m.py": text})
    facts = index.function_facts("/project/m.py", function)
    assert facts is not None
    position = next(
        i
        for i, e in enumerate(facts["events"])
        if e["k"] == "forward" and e["pos"][0] == line and e.get("key") == key
    )
    return mode_before(index, "/project/m.py", function, facts["events"], position, key)


def test_eval_reaches_through_if_for_with_and_try() -> None:
    text = """
        import torch

        def run(model, loader, fast):
            if fast:
                model.eval()
            else:
                model.eval()
            try:
                for x in loader:
                    with torch.no_grad():
                        model(x)
            finally:
                pass
    """
    assert _mode(text, "run", 12) == "eval"


def test_later_train_in_a_loop_overrides_eval() -> None:
    text = """
        def run(model, loader):
            model.eval()
            for x in loader:
                model.train()
                model(x)
    """
    assert _mode(text, "run", 6) == "train"


def test_eval_set_by_a_project_helper_reaches_the_call() -> None:
    text = """
        def prepare(net):
            net.eval()
            return net

        def run(model, x):
            prepare(model)
            model(x)
    """
    assert _mode(text, "run", 8) == "eval"


def test_nothing_sets_the_mode_when_no_call_does() -> None:
    text = """
        def run(model, x):
            print(model)
            model(x)
    """
    assert _mode(text, "run", 4) is None


def _run(project: Path) -> RunResult:
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection())
    return check_paths([project], settings, enabled, cwd=project, use_cache=True)


def test_warm_rerun_after_touching_one_file_reparses_only_that_file(
    project: Path,
) -> None:
    # The cross-file fixture project with the index rules (BN001-BN005) on.
    for source in (FIXTURES / "project").rglob("*.py"):
        target = project / source.relative_to(FIXTURES / "project")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    cold = _run(project)
    assert cold.parsed >= 3
    assert {f.code for f in cold.findings} >= {"BN001", "BN002", "BN003", "BN004", "BN005"}
    assert _run(project).parsed == 0
    script = project / "train.py"
    script.write_text(script.read_text() + "\n# touched\n")
    rerun = _run(project)
    assert rerun.parsed == 1
    assert rerun.findings == cold.findings
