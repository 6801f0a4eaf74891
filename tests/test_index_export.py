"""Index items behind BN009/BN008 on real code: package `__init__` re-exports,
segmentation_models_pytorch families (installed or vendored as `smp`), named parts of
a model, and whether an object is shown to be an `nn.Module`."""

from __future__ import annotations

import ast
import textwrap

from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.ast_names import import_aliases
from bnlint.index.kinds import segmentation_family_kind
from bnlint.index.modes import part_kind
from bnlint.index.module_evidence import is_known_module, module_classes, module_names


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


VENDORED = {
    "/project/seg/__init__.py": "from .unet import Unet\nfrom . import encoders\n",
    "/project/seg/unet/__init__.py": "from .model import Unet\n",
    "/project/seg/unet/model.py": """
        from torch import nn
        from ..encoders import get_encoder

        class Unet(nn.Module):
            def __init__(self, name):
                super().__init__()
                self.encoder = get_encoder(name)
        """,
    "/project/seg/encoders/__init__.py": """
        REGISTRY = {}

        def get_encoder(name):
            return REGISTRY[name]["encoder"]()
        """,
    "/project/net.py": """
        import torch
        import seg

        class Depth(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.unet = seg.Unet("resnet34")
                self.head = torch.nn.Conv2d(1, 1, 1)

        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.depth = Depth()
                self.scale = torch.nn.Linear(4, 1)
        """,
    "/project/export.py": """
        import torch
        from net import Model
        model = Model()
        torch.jit.trace(model.depth, torch.rand(1, 3, 64, 64))
        """,
}


def test_package_init_that_only_reexports_resolves_the_class() -> None:
    index = index_of(VENDORED)
    assert index.lookup("/project/net.py", "seg.Unet") == (
        "/project/seg/unet/model.py",
        "class",
        "Unet",
    )


def test_init_without_reexports_stays_out_of_the_index() -> None:
    index = index_of({"/project/pkg/__init__.py": '"""Docs only."""\n'})
    assert index.summaries == {}


def test_vendored_smp_is_not_a_known_family_under_another_name() -> None:
    # The vendored package is called `seg` here: its own code hides the encoder in a
    # registry, so the model stays unknown.
    index = index_of(VENDORED)
    assert index.class_kind("/project/net.py", "Depth") is None


def test_vendored_smp_under_its_usual_name_is_a_bn_family() -> None:
    files = {
        path.replace("/seg/", "/smp/"): text.replace("import seg", "import smp").replace(
            "seg.Unet", "smp.Unet"
        )
        for path, text in VENDORED.items()
    }
    index = index_of(files)
    assert index.class_kind("/project/net.py", "Depth") == "bn"
    assert index.class_kind("/project/net.py", "Model") == "bn"
    assert part_kind(index, "/project/export.py", "<module>", "model.depth") == "bn"
    assert part_kind(index, "/project/export.py", "<module>", "model.scale") == "none"


def test_segmentation_families_by_decoder_and_encoder() -> None:
    unet = "segmentation_models_pytorch.Unet"
    fpn = "segmentation_models_pytorch.FPN"
    assert segmentation_family_kind(unet, {}) == "bn"
    assert segmentation_family_kind(unet, {"decoder_use_batchnorm": False, "#0": "mit_b2"}) is None
    assert segmentation_family_kind(fpn, {}) == "bn"  # resnet34 by default
    assert segmentation_family_kind(fpn, {"encoder_name": "mit_b0"}) is None
    assert segmentation_family_kind(fpn, {"encoder_name": "tu-resnest50d"}) == "bn"
    assert segmentation_family_kind("smp.encoders.get_encoder", {"name": "resnet50"}) == "bn"
    assert segmentation_family_kind("smp.encoders.get_encoder", {"name": "?"}) is None
    assert segmentation_family_kind("torchvision.models.resnet50", {}) is None


def _module_names(text: str, function: str) -> set[str]:
    tree = ast.parse(textwrap.dedent(text))
    aliases = import_aliases(tree)
    scope = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == function
    )
    return module_names(scope, aliases, module_classes(tree, aliases))


def test_module_evidence_from_bindings_calls_and_module_methods() -> None:
    text = """
        import torch.nn as nn
        import torchvision

        class Head(nn.Module):
            def forward(self, x):
                return x

        def build(cfg, env, pipeline):
            trunk = torchvision.models.resnet18().cuda()
            head = Head()
            wrapped = nn.DataParallel(trunk)
            zoo = load_zoo_model(cfg.name, pretrained=True)
            probe = make_probe()
            probe.load_state_dict(cfg.state)
            runner = make_runner()
            runner(cfg)
            env.reset()
            pipeline.training = False
        """
    known = _module_names(text, "build")
    for name in ("trunk", "head", "wrapped", "zoo", "probe", "runner"):
        assert is_known_module(name, known), name
    assert is_known_module("trunk.layer4", known)
    assert not is_known_module("env", known)
    assert not is_known_module("pipeline", known)
    assert not is_known_module("cfg", known)


HOLDER = {
    "/project/model.py": """
        import torch
        import torchvision

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.cnn = torchvision.models.resnet18()

            def forward(self, x):
                return self.cnn(x)

        class Holder:
            def __init__(self):
                self.enc = Encoder()
                self.opt = torch.optim.SGD(self.enc.parameters(), lr=0.1)

            def start_eval(self):
                self.enc.eval()

            def encode(self, x):
                return self.enc(x)

            def step(self, x):
                loss = self.encode(x).sum()
                loss.backward()
                self.opt.step()
        """,
    "/project/evaluation.py": """
        def embed(model, loader):
            model.start_eval()
            return [model.encode(x) for x in loader]
        """,
    "/project/train.py": """
        from evaluation import embed
        from model import Holder

        def fit(model, loader, val_loader):
            for i, x in enumerate(loader):
                model.step(x)
                if i % 10 == 0:
                    embed(model, val_loader)

        def main(loader, val_loader):
            model = Holder()
            fit(model, loader, val_loader)
        """,
}


def test_method_of_a_parameter_resolves_through_its_callers() -> None:
    from bnlint.index.receivers import member_kind, method_of, receiver_class

    index = index_of(HOLDER)
    assert receiver_class(index, "/project/train.py", "fit", "model") == (
        "/project/model.py",
        "Holder",
    )
    (event,) = [
        e for e in index.function_facts("/project/train.py", "fit")["events"] if "recv" in e
    ]
    assert method_of(index, "/project/train.py", "fit", event) == (
        "/project/model.py",
        "Holder.step",
    )
    assert member_kind(index, "/project/train.py", "fit", "model.enc") == "bn"
    assert member_kind(index, "/project/train.py", "fit", "model.opt") != "bn"


def test_eval_made_by_a_helper_objects_method_leaks_into_training() -> None:
    from bnlint.index.loop_modes import LoopModes

    index = index_of(HOLDER)
    facts = index.function_facts("/project/train.py", "fit")
    (leak,) = LoopModes(index, "/project/train.py").leaks("fit", facts)
    assert leak.key == "model.enc"
    assert leak.source is not None and leak.source.function == "Holder.start_eval"
    assert leak.origin["fn"] == "evaluation.embed"


def test_unknown_receiver_class_keeps_the_call_opaque() -> None:
    from bnlint.index.loop_modes import LoopModes

    files = dict(HOLDER)
    files["/project/train.py"] = HOLDER["/project/train.py"].replace(
        "model = Holder()", "model = build_holder()"
    )
    index = index_of(files)
    facts = index.function_facts("/project/train.py", "fit")
    assert LoopModes(index, "/project/train.py").leaks("fit", facts) == []


def test_mode_call_on_the_variable_of_a_loop_over_models_reaches_each_model() -> None:
    index = index_of(
        {
            "/project/train.py": """
                def switch(encoder, decoder):
                    nets = [encoder, decoder]
                    for net in nets:
                        net.eval()
                    for other in (encoder.head, decoder):
                        other.train()
                    for net in loaders:
                        net.train()
                """
        }
    )
    facts = index.function_facts("/project/train.py", "switch")
    modes = [(e["k"], e["key"]) for e in facts["events"] if e["k"] in ("eval", "train")]
    assert modes == [
        ("eval", "net"),
        ("eval", "encoder"),
        ("eval", "decoder"),
        ("train", "other"),
        ("train", "encoder.head"),
        ("train", "decoder"),
        ("train", "net"),
    ]
    runs = [block.get("runs", False) for block in facts["blocks"] if block["k"] == "loop"]
    assert runs == [True, True, False]


def test_lightning_checkpoint_constructor_builds_its_class() -> None:
    index = index_of(
        {
            "/project/lit.py": """
                import pytorch_lightning as pl
                import torchvision

                class Lit(pl.LightningModule):
                    def __init__(self):
                        super().__init__()
                        self.net = torchvision.models.resnet18()

                class Plain(pl.LightningModule):
                    def __init__(self):
                        super().__init__()
                        self.net = torchvision.models.vit_b_16()
                """,
            "/project/export.py": """
                import torch
                from lit import Lit, Plain

                def export(path):
                    model = Lit.load_from_checkpoint(path)
                    other = Plain.load_from_checkpoint(path)
                    pickled = torch.load(path)
                    torch.jit.trace(model, torch.rand(1, 3, 8, 8))
                """,
        }
    )
    assert index.key_kind("/project/export.py", "export", "model") == "bn"
    assert index.key_kind("/project/export.py", "export", "other") != "bn"
    assert index.key_kind("/project/export.py", "export", "pickled") is None


def test_only_plain_holder_classes_keep_facts_of_methods_that_run_submodules() -> None:
    index = index_of(
        {
            "/project/m.py": """
                import torch

                class Head(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.conv = torch.nn.Conv2d(3, 3, 1)

                    def predict(self, x):
                        return self.conv(x)

                class Holder:
                    def __init__(self):
                        self.enc = Head()

                    def embed(self, x):
                        return self.enc(x)
                """
        }
    )
    own = index.function_facts("/project/m.py", "Head.predict")
    assert own is None or not own["events"]
    facts = index.function_facts("/project/m.py", "Holder.embed")
    assert facts is not None
    assert [e["key"] for e in facts["events"] if e["k"] == "forward"] == ["self.enc"]
