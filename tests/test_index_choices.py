"""bnlint.index.choices: a model chosen by name is the candidate the name picks when
the name is known statically, and known otherwise only when every candidate agrees."""

from __future__ import annotations

import textwrap

from bnlint.index import ProjectIndex, summarize_file

ENCODERS = """
    from torch import nn

    class WithBN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

    def build(name):
        chosen = globals()[name]
        return chosen()

    class Net(nn.Module):
        def __init__(self, backbone="Plain"):
            super().__init__()
            self.backbone = build(backbone)
"""


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


def model_kind(train: str, key: str = "model") -> str | None:
    index = index_of({"/project/nets.py": ENCODERS, "/project/train.py": train})
    return index.key_kind("/project/train.py", "<module>", key)


def test_argparse_default_passed_through_constructor_and_factory_picks_the_model() -> None:
    train = """
        import argparse
        from nets import Net
        parser = argparse.ArgumentParser()
        parser.add_argument("--backbone", default="{}")
        args = parser.parse_args()
        model = Net(backbone=args.backbone)
    """
    assert model_kind(train.format("WithBN")) == "bn"
    assert model_kind(train.format("Plain")) == "none"


def test_constructor_default_literal_and_module_constant_pick_the_model() -> None:
    assert model_kind("from nets import Net\nmodel = Net()\n") == "none"
    assert model_kind("from nets import Net\nmodel = Net('WithBN')\n") == "bn"
    assert model_kind("from nets import Net\nARCH = 'WithBN'\nmodel = Net(ARCH)\n") == "bn"


def test_a_computed_name_or_a_constant_set_twice_is_unknown() -> None:
    assert model_kind("from nets import Net\nmodel = Net(backbone=pick())\n") is None
    twice = "from nets import Net\nARCH = 'WithBN'\nARCH = 'Plain'\nmodel = Net(ARCH)\n"
    assert model_kind(twice) is None


def test_table_of_constructors_with_unknown_name_needs_every_candidate_to_agree() -> None:
    table = """
        import torchvision
        from nets import WithBN, Plain
        model = {{"a": WithBN, "b": {}}}[config["arch"]]()
    """
    assert model_kind(table.format("torchvision.models.resnet18")) == "bn"
    assert model_kind(table.format("Plain")) is None
    assert model_kind(table.format("Plain").replace('config["arch"]', '"b"')) == "none"


def test_getattr_on_a_library_module_reads_the_factory_the_name_picks() -> None:
    source = "import torchvision\nmodel = getattr(torchvision.models, {})(weights=None)\n"
    assert model_kind(source.format("'resnet34'")) == "bn"
    assert model_kind(source.format("'vit_b_16'")) == "none"
    assert model_kind(source.format("arch")) is None


def test_class_alone_is_taken_with_its_constructor_defaults() -> None:
    index = index_of({"/project/nets.py": ENCODERS})
    assert index.class_kind("/project/nets.py", "Net") == "none"
    bn_default = ENCODERS.replace('backbone="Plain"', 'backbone="WithBN"')
    index = index_of({"/project/nets.py": bn_default})
    assert index.class_kind("/project/nets.py", "Net") == "bn"


BRANCHES = """
    from torch import nn

    class Detector(nn.Module):
        def __init__(self, classes, backbone="vgg"):
            super().__init__()
            if backbone == "vgg":
                self.features = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU())
            elif backbone in ("resnet50", "resnet101"):
                self.features = nn.Sequential(nn.Conv2d(3, 64, 7), nn.BatchNorm2d(64))
            else:
                self.features = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64))
            self.head = nn.Linear(64, classes)
"""


def test_if_elif_chain_on_a_constructor_name_takes_the_branch_it_names() -> None:
    def kind(call: str) -> str | None:
        index = index_of({"/project/nets.py": BRANCHES, "/project/train.py": call})
        return index.key_kind("/project/train.py", "<module>", "model")

    head = "from nets import Detector\n"
    assert kind(head + "model = Detector(20)\n") == "none"
    assert kind(head + "model = Detector(20, backbone='resnet101')\n") == "bn"
    assert kind(head + "model = Detector(20, backbone='mobilenet')\n") == "bn"  # the else
    assert kind(head + "model = Detector(20, backbone=choose())\n") is None
    every_bn = BRANCHES.replace("nn.ReLU()", "nn.BatchNorm2d(64)")
    unknown = head + "model = Detector(20, backbone=x())\n"
    index = index_of({"/project/nets.py": every_bn, "/project/train.py": unknown})
    assert index.key_kind("/project/train.py", "<module>", "model") == "bn"
