"""The index items the structural rules (BN001, BN004) need: norm classes passed as
arguments, star imports and re-exporting packages, tuple returns of `forward`, the
width names of a final layer, and where weights come from."""

from __future__ import annotations

import ast
import textwrap

from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.graph import names_an_embedding
from bnlint.index.provenance import is_test_file, loads_checkpoints
from bnlint.index.summary import Names


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


BLOCK = """
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, c, norm_layer=None):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3)
            self.bn = norm_layer(c)
"""


def test_norm_parameter_builds_batchnorm_when_every_value_passed_is_batchnorm() -> None:
    index = index_of(
        {
            "/project/models/block.py": BLOCK,
            "/project/train.py": """
                import torch.nn as nn
                from models.block import Block

                def main(sync):
                    if sync:
                        Norm = nn.SyncBatchNorm
                    else:
                        Norm = nn.BatchNorm2d
                    return Block(64, norm_layer=Norm)
            """,
        }
    )
    bn = index.class_info("/project/models/block.py", "Block")["layers"]["bn"]
    assert bn["call"] == "$norm_layer"
    assert index.norm_kind("/project/models/block.py", bn["call"]) == "bn"
    assert index.class_kind("/project/models/block.py", "Block") == "bn"


def test_norm_parameter_is_unknown_when_a_caller_passes_another_norm() -> None:
    index = index_of(
        {
            "/project/models/block.py": BLOCK,
            "/project/nets.py": """
                import torch.nn as nn
                from models.block import Block

                def bn_net(norm_layer=nn.BatchNorm2d):
                    return Block(8, norm_layer=norm_layer)

                def gn_net():
                    return Block(8, norm_layer=lambda c: nn.GroupNorm(4, c))
            """,
        }
    )
    assert index.norm_argument_kind("norm_layer") is None
    assert index.norm_kind("/project/models/block.py", "$norm_layer") is None


def test_norm_parameter_without_any_value_stays_unknown() -> None:
    index = index_of({"/project/models/block.py": BLOCK})
    assert index.norm_argument_kind("norm_layer") is None


def test_pass_through_and_none_add_no_value() -> None:
    summary = summarize_file(
        "a.py",
        textwrap.dedent(
            """
            import torch.nn as nn

            def make(norm_layer=None, use_bn=True):
                return Block(3, norm_layer=norm_layer, bn=False)

            net = make(norm_layer=nn.BatchNorm2d)
            """
        ),
    )
    assert summary.norm_args == {"norm_layer": ["torch.nn.BatchNorm2d"]}


def test_star_import_through_a_package_resolves_to_the_class() -> None:
    index = index_of(
        {
            "/project/models/__init__.py": "from .nets import *\n",
            "/project/models/nets.py": """
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.bn = nn.BatchNorm1d(4)
            """,
            "/project/main.py": """
                from models import *

                model = Net()
                model.train()
            """,
        }
    )
    binding = index.summaries["/project/main.py"].functions["<module>"]["bindings"]["model"][0]
    assert index.lookup("/project/main.py", binding["spec"]["call"]) == (
        "/project/models/nets.py",
        "class",
        "Net",
    )
    assert index.key_kind("/project/main.py", "<module>", "model") == "bn"


def test_builtins_and_unknown_names_stay_unknown_under_a_star_import() -> None:
    names = Names({"*0": "helpers"}, set(), {})
    assert names.star(ast.Name(id="list")) is None
    assert names.star(ast.Name(id="Missing")) == "*Missing"
    assert Names({}, set(), {}).star(ast.Name(id="Missing")) is None
    index = index_of(
        {
            "/project/main.py": "from helpers import *\nmodel = Missing()\n",
            "/project/helpers.py": "import torch\nVALUE = 1\n",
        }
    )
    assert index.lookup("/project/main.py", "*Missing") is None
    assert index.canonical("/project/main.py", "*Missing") is None


def test_package_init_that_only_re_exports_is_indexed() -> None:
    index = index_of(
        {
            "/project/pkg/__init__.py": "from .resnet import ResNet\n",
            "/project/pkg/resnet.py": """
                import torch.nn as nn

                class ResNet(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.bn = nn.BatchNorm2d(3)
            """,
        }
    )
    assert index.lookup("/project/x.py", "pkg.ResNet") == (
        "/project/pkg/resnet.py",
        "class",
        "ResNet",
    )


def test_forward_tuple_return_is_judged_by_its_first_result() -> None:
    summary = summarize_file(
        "m.py",
        textwrap.dedent(
            """
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    feats = self.body(x)
                    out = self.bn(self.fc(feats))
                    return out, feats
            """
        ),
    )
    assert summary.classes["Net"]["forward"]["returns"] == [["bn", "fc", "body", "<input>"]]


def test_width_names_tell_an_embedding_from_class_scores() -> None:
    assert names_an_embedding({"width": "embedding_size"})
    assert names_an_embedding({"width": "feat_dim"}, None)
    assert not names_an_embedding({"width": "num_classes"}, {"width": "feat_dim"})
    assert not names_an_embedding({"width": "out_features"})
    assert not names_an_embedding({})


def test_strict_and_url_loads_count_as_released_weights() -> None:
    assert loads_checkpoints("model.load_state_dict(torch.load(path))\n")
    assert loads_checkpoints("URL = 'https://host/x/resnet-5c1d.pth'\n")
    assert loads_checkpoints("sd = model_zoo.load_url(urls['a'])\n")
    assert not loads_checkpoints("model.load_state_dict(\n    torch.load(p), strict=False)\n")
    assert not loads_checkpoints("torch.save(model.state_dict(), 'out.pt')\n")


def test_test_files_are_recognised_relative_to_the_project_root() -> None:
    assert is_test_file("/p", "/p/tests/models/test_net.py")
    assert is_test_file("/p", "/p/pkg/net_test.py")
    assert is_test_file("/p", "/p/test/helpers.py")
    assert not is_test_file("/tmp/pytest-1/test_case0", "/tmp/pytest-1/test_case0/model.py")
    assert not is_test_file("/p", "/p/models/contest.py")


def test_reshapes_and_global_pools_keep_the_returned_chain() -> None:
    summary = summarize_file(
        "m.py",
        textwrap.dedent(
            """
            import torch
            import torch.nn.functional as F
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    x = self.bn(self.conv(x))
                    x = F.adaptive_avg_pool2d(x, 1)
                    return torch.flatten(x, 1)
            """
        ),
    )
    chain = summary.classes["Net"]["forward"]["returns"][0]
    assert chain[:4] == ["fn:shape", "fn:pool", "bn", "conv"]


def test_alias_assigned_two_classes_at_module_level_is_unknown() -> None:
    index = index_of(
        {
            "/project/blocks.py": """
                import os
                import torch.nn as nn

                if os.environ.get("GN"):
                    Norm = nn.GroupNorm
                else:
                    Norm = nn.BatchNorm2d

                try:
                    from apex.parallel import SyncBatchNorm as Synced
                except ImportError:
                    Synced = nn.BatchNorm2d
            """,
        }
    )
    aliases = index.summaries["/project/blocks.py"].aliases
    assert not isinstance(aliases["Norm"], str)
    assert index.norm_kind("/project/blocks.py", aliases["Synced"]) == "bn"
    assert index.norm_kind("/project/blocks.py", "apex.parallel.SyncBatchNorm") == "bn"


def test_norm_class_passed_by_position_makes_a_norm_parameter_unknown() -> None:
    index = index_of(
        {
            "/project/models/block.py": BLOCK,
            "/project/nets.py": """
                import torch.nn as nn
                from models.block import Block

                def bn_net(norm_layer=nn.BatchNorm2d):
                    return Block(8, norm_layer=norm_layer)

                def gn_net():
                    return Block(8, nn.GroupNorm)

                def init(m):
                    return isinstance(m, nn.LayerNorm)
            """,
        }
    )
    summary = index.summaries["/project/nets.py"]
    assert summary.norm_args["#positional"] == ["torch.nn.GroupNorm"]
    assert index.norm_argument_kind("norm_layer") is None
