"""Loader flow (bnlint.index.loaders): the training loops a DataLoader reaches through
factories, dicts, globals, `self`, wrappers and `next()`, and the batch size it gets
from an argparse option declared in another file."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bnlint.config import Selection, load_settings
from bnlint.engine.run import check_paths
from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.loaders import argparse_default, file_loaders, iterates, training_loops
from bnlint.index.modes import batch_size
from bnlint.index.steppers import stepped_models


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


def loops_fed_by(index: ProjectIndex, path: str, key: str) -> list[tuple[str, str, int]]:
    """(path, function, loop line) of the training loops the loader `key` of `path` feeds."""
    found = []
    for function, facts, loader_key, _ in file_loaders(index, path):
        if loader_key == key:
            for loop_path, loop_function, _, loop in training_loops(
                index, path, function, facts, key
            ):
                found.append((loop_path, loop_function, loop["pos"][0]))
    return found


TRAIN = """
    def fit(net, loader, optimizer):
        for x, y in loader:
            optimizer.zero_grad()
            net(x).sum().backward()
"""


def test_loader_returned_in_a_tuple_reaches_the_loop_of_the_function_it_is_passed_to() -> None:
    index = index_of(
        {
            "/project/data.py": """
                from torch.utils.data import DataLoader

                def make_loaders(a, b):
                    train_loader = DataLoader(a, shuffle=True)
                    val_loader = DataLoader(b)
                    return train_loader, val_loader
            """,
            "/project/engine.py": TRAIN,
            "/project/main.py": """
                from data import make_loaders
                from engine import fit

                def main(net, opt):
                    tr, va = make_loaders(1, 2)
                    fit(net, tr, opt)
            """,
        }
    )
    assert loops_fed_by(index, "/project/data.py", "train_loader") == [
        ("/project/engine.py", "fit", 3)
    ]
    assert loops_fed_by(index, "/project/data.py", "val_loader") == []


def test_items_of_a_loader_dict_reach_a_loop_over_a_subscript_with_a_variable() -> None:
    index = index_of(
        {
            "/project/main.py": """
                from torch.utils.data import DataLoader

                def loaders_for(sets):
                    return {s: DataLoader(sets[s], shuffle=True) for s in sets}

                def train(model, loaders):
                    for phase in ("train", "val"):
                        for x in loaders[phase]:
                            model(x).sum().backward()

                def main(model, sets):
                    dls = loaders_for(sets)
                    train(model, dls)
            """
        }
    )
    assert loops_fed_by(index, "/project/main.py", "<return0>[]") == [
        ("/project/main.py", "train", 9)
    ]


def test_named_dict_items_only_reach_loops_over_their_own_name() -> None:
    assert iterates("loaders[train]", "loaders[train]")
    assert iterates("loaders[]", "loaders[test]")
    assert not iterates("loaders[train]", "loaders[test]")
    assert not iterates("other[train]", "loaders[train]")


def test_module_level_loader_reaches_a_function_that_reads_it_and_not_one_that_rebinds_it() -> None:
    index = index_of(
        {
            "/project/train.py": """
                from torch.utils.data import DataLoader
                from tqdm import tqdm

                loader = DataLoader(ds, batch_size=4, shuffle=True)

                def train(net):
                    bar = tqdm(loader)
                    for x in bar:
                        net(x).sum().backward()

                def other(net, loader):
                    for x in loader:
                        net(x).sum().backward()
            """
        }
    )
    assert loops_fed_by(index, "/project/train.py", "loader") == [("/project/train.py", "train", 9)]


def test_loader_set_in_a_constructor_reaches_the_methods_of_its_class() -> None:
    index = index_of(
        {
            "/project/trainer.py": """
                from torch.utils.data import DataLoader

                class Trainer:
                    def __init__(self, ds, model):
                        self.model = model
                        self.loader = DataLoader(ds, shuffle=True)

                    def epoch(self):
                        with tqdm(self.loader) as batches:
                            for x in batches:
                                self.model(x).sum().backward()
            """
        }
    )
    assert loops_fed_by(index, "/project/trainer.py", "self.loader") == [
        ("/project/trainer.py", "Trainer.epoch", 11)
    ]


def test_next_on_an_iterator_of_the_loader_draws_from_it_inside_a_step_loop() -> None:
    index = index_of(
        {
            "/project/train.py": """
                from torch.utils.data import DataLoader

                def run(net, ds):
                    loader = DataLoader(ds, batch_size=2)
                    batches = iter(loader)
                    for step in range(100):
                        x = next(batches)
                        net(x).sum().backward()
            """
        }
    )
    assert loops_fed_by(index, "/project/train.py", "loader") == [("/project/train.py", "run", 7)]


OPTIONS = """
    import argparse

    def get_args():
        parser = argparse.ArgumentParser()
        parser.add_argument("--batch-size", type=int, default=1)
        return parser.parse_args()
"""


def test_batch_size_read_from_an_argparse_option_declared_in_another_file() -> None:
    index = index_of(
        {
            "/project/options.py": OPTIONS,
            "/project/train.py": """
                from torch.utils.data import DataLoader

                def loaders(args, ds):
                    return DataLoader(ds, batch_size=args.batch_size, shuffle=True)
            """,
        }
    )
    assert argparse_default(index, "/project/train.py", "batch_size") == (
        1,
        "/project/options.py",
        [6, 4, 6, 60],
    )
    ((_, facts, _, loader),) = list(file_loaders(index, "/project/train.py"))
    assert batch_size(index, "/project/train.py", facts, loader) == 1


def test_options_declared_twice_with_different_defaults_are_unknown() -> None:
    index = index_of(
        {
            "/project/a.py": OPTIONS,
            "/project/b.py": OPTIONS.replace("default=1", "default=16"),
            "/project/train.py": "x = 1\n",
        }
    )
    declared = argparse_default(index, "/project/train.py", "batch_size")
    assert declared is not None and declared[0] == "?"


def test_bn003_reports_the_option_default_in_the_options_file(project: Path) -> None:
    (project / "options.py").write_text(textwrap.dedent(OPTIONS))
    (project / "train.py").write_text(
        textwrap.dedent(
            """
            import torch
            import torchvision
            from torch.utils.data import DataLoader
            from options import get_args

            args = get_args()
            net = torchvision.models.resnet18()
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True)
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
            """
        )
    )
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection(select=("BN003",)))
    result = check_paths([project / "options.py"], settings, enabled, cwd=project, use_cache=False)
    assert [(f.code, f.start.line) for f in result.findings] == [("BN003", 6)]
    assert "train.py:10" in result.findings[0].message


def test_loader_passed_to_a_constructor_reaches_the_methods_that_iterate_its_attribute() -> None:
    index = index_of(
        {
            "/project/trainer.py": """
                class Trainer:
                    def __init__(self, model, train_loader, epochs=3):
                        self.model = model
                        self.data = train_loader

                    def train_epoch(self):
                        for x in self.data:
                            self.model(x).sum().backward()
            """,
            "/project/main.py": """
                from torch.utils.data import DataLoader
                from trainer import Trainer

                def main(model, ds):
                    loader = DataLoader(ds, batch_size=4)
                    Trainer(model, loader).train_epoch()
            """,
        }
    )
    assert loops_fed_by(index, "/project/main.py", "loader") == [
        ("/project/trainer.py", "Trainer.train_epoch", 8)
    ]


def _only_loader_size(index: ProjectIndex, path: str) -> object:
    ((function, facts, _, loader),) = list(file_loaders(index, path))
    return batch_size(index, path, facts, loader, function)


def test_batch_size_read_from_a_kwargs_dict_and_a_config_dict() -> None:
    spread = index_of(
        {
            "/project/a.py": """
                from torch.utils.data import DataLoader
                opts = {"batch_size": 1, "shuffle": True}
                loader = DataLoader(ds, **opts)
            """
        }
    )
    assert _only_loader_size(spread, "/project/a.py") == 1
    nested = index_of(
        {
            "/project/a.py": """
                from torch.utils.data import DataLoader
                CFG = {"train": {"bs": 1}}
                def make(ds):
                    return DataLoader(ds, batch_size=CFG["train"]["bs"])
            """
        }
    )
    assert _only_loader_size(nested, "/project/a.py") == 1


def test_a_kwargs_dict_with_a_key_that_is_not_a_literal_keeps_the_batch_unknown() -> None:
    index = index_of(
        {
            "/project/a.py": """
                from torch.utils.data import DataLoader
                def make(ds, n):
                    opts = {"batch_size": n, "shuffle": True}
                    return DataLoader(ds, **opts)
            """
        }
    )
    assert _only_loader_size(index, "/project/a.py") == "?"


def test_parameter_batch_size_is_what_every_caller_passes() -> None:
    helper = textwrap.dedent(
        """
        from torch.utils.data import DataLoader
        def make(ds, bs=1):
            return DataLoader(ds, batch_size=bs)
        """
    )
    uncalled = index_of({"/project/a.py": helper})
    assert _only_loader_size(uncalled, "/project/a.py") == 1
    passes_32 = index_of({"/project/a.py": helper + "\nx = make(ds, 32)\ny = make(ds, bs=32)\n"})
    assert _only_loader_size(passes_32, "/project/a.py") == 32
    disagree = index_of({"/project/a.py": helper + "\nx = make(ds)\ny = make(ds, 8)\n"})
    assert _only_loader_size(disagree, "/project/a.py") == "?"


def test_bn003_reports_an_option_of_another_file_once_at_the_option(project: Path) -> None:
    (project / "options.py").write_text(textwrap.dedent(OPTIONS))
    (project / "train.py").write_text(
        textwrap.dedent(
            """
            import torchvision
            from torch.utils.data import DataLoader
            from options import get_args

            args = get_args()
            net = torchvision.models.resnet18()
            loader = DataLoader(ds, batch_size=args.batch_size)
            for x, y in loader:
                net(x).sum().backward()
            """
        )
    )
    settings = load_settings(project)
    enabled = settings.enabled_codes(Selection(select=("BN003",)))
    result = check_paths([project], settings, enabled, cwd=project, use_cache=False)
    assert [(Path(f.path).name, f.start.line) for f in result.findings] == [("options.py", 6)]


def test_model_unpacked_from_a_tuple_a_factory_returns_has_the_kind_of_that_item() -> None:
    index = index_of(
        {
            "/project/build.py": """
                import torch
                import torchvision

                def build(cfg):
                    net = torchvision.models.resnet50()
                    opt = torch.optim.SGD(net.parameters(), lr=0.1)
                    return net, opt, "resnet50"
            """,
            "/project/main.py": """
                from build import build

                def main(cfg):
                    model, optimizer, name = build(cfg)
                    model = model.cuda()
                    return model
            """,
        }
    )
    assert index.key_kind("/project/main.py", "main", "model") == "bn"
    assert index.key_kind("/project/main.py", "main", "optimizer") is None


def test_batch_size_read_from_an_item_of_a_parameter_follows_the_sections_callers_pass() -> None:
    index = index_of(
        {
            "/project/data.py": """
                from torch.utils.data import DataLoader

                def build(opts):
                    return DataLoader(opts["ds"], batch_size=opts["train_batch_size"], shuffle=True)
            """,
            "/project/main.py": """
                from data import build

                def run(settings):
                    train_loader = build(settings["data"])
                    return train_loader

                def main():
                    settings = {"data": {"train_batch_size": 1, "val_batch_size": 8}, "lr": 0.1}
                    run(settings)
            """,
        }
    )
    ((function, facts, _, loader),) = list(file_loaders(index, "/project/data.py"))
    assert loader["batch"] == {"param": "opts", "keys": ["train_batch_size"]}
    assert batch_size(index, "/project/data.py", facts, loader, function) == 1


def test_a_section_merged_with_unknown_content_before_the_call_is_unknown() -> None:
    index = index_of(
        {
            "/project/main.py": """
                from torch.utils.data import DataLoader

                def build(opts):
                    return DataLoader(opts["ds"], batch_size=opts["train_batch_size"], shuffle=True)

                def main(overrides):
                    settings = {"data": {"train_batch_size": 1}}
                    settings.update(overrides)
                    build(settings["data"])
            """,
        }
    )
    ((function, facts, _, loader),) = list(file_loaders(index, "/project/main.py"))
    assert batch_size(index, "/project/main.py", facts, loader, function) == "?"


def test_loaders_returned_in_a_list_and_nested_in_a_list_reach_a_trainer_method() -> None:
    index = index_of(
        {
            "/project/main.py": """
                from torch.utils.data import DataLoader

                def make_fold(a, b):
                    tr = DataLoader(a, batch_size=1, shuffle=True)
                    va = DataLoader(b, batch_size=1)
                    return [tr, va]

                class Trainer:
                    def __init__(self, net, folds):
                        self.net = net
                        self.folds = folds

                    def train(self, epoch, loader):
                        for x, y in loader:
                            self.net(x).sum().backward()

                    def run(self):
                        train_loader = self.folds[0][0]
                        self.train(0, train_loader)

                folds = [make_fold(1, 2)]
                Trainer(None, folds).run()
            """,
        }
    )
    assert loops_fed_by(index, "/project/main.py", "tr") == [
        ("/project/main.py", "Trainer.train", 15)
    ]
    assert loops_fed_by(index, "/project/main.py", "va") == []


GENERATOR = """
    class Batches:
        def __init__(self, items, batch_size=1):
            self.items = items
            self.batch_size = batch_size

        def generate(self):
            held = []
            for item in self.items:
                held.append(item)
                if len(held) == self.batch_size:
                    yield held
                    held = []
"""


def _generator_size(call: str, generator: str = GENERATOR) -> object:
    script = (
        f"import torch\nfrom data import Batches\ngen = {call}\n"
        "for x in gen:\n    net(x).sum().backward()\n"
    )
    index = index_of({"/project/data.py": generator, "/project/main.py": script})
    facts = index.function_facts("/project/main.py", "<module>")
    assert facts is not None
    return batch_size(index, "/project/main.py", facts, facts["loaders"]["gen"], "<module>")


def test_batching_generator_gets_its_constructors_default_batch_size() -> None:
    assert _generator_size("Batches(range(9)).generate()") == 1


def test_batching_generator_gets_the_batch_size_the_call_passes() -> None:
    assert _generator_size("Batches(range(9), batch_size=4).generate()") == 4
    assert _generator_size("Batches(range(9), 6).generate()") == 6


def test_generator_that_does_not_count_against_the_batch_attribute_stays_unknown() -> None:
    per_item = GENERATOR.replace("if len(held) == self.batch_size:", "if held:")
    assert _generator_size("Batches(range(9)).generate()", per_item) == "?"


def test_loop_trains_the_model_a_helper_object_steps() -> None:
    index = index_of(
        {
            "/project/main.py": """
                import torchvision
                from data import Batches

                class Stepper:
                    def __init__(self, net, optimizer):
                        self.net = net
                        self.optimizer = optimizer

                    def step(self, x):
                        self.net(x).sum().backward()

                def fit(net, optimizer, gen):
                    stepper = Stepper(net, optimizer)
                    for x in gen:
                        stepper.step(x)

                model = torchvision.models.resnet18()
                gen = Batches(range(9)).generate()
                fit(model, None, gen)
            """,
            "/project/data.py": GENERATOR,
        }
    )
    assert loops_fed_by(index, "/project/main.py", "gen") == [("/project/main.py", "fit", 15)]
    loop_facts = index.function_facts("/project/main.py", "fit")
    assert loop_facts is not None
    assert stepped_models(index, "/project/main.py", "fit", loop_facts, loop_facts["loops"][0]) == [
        "net",
        "optimizer",
    ]


def test_a_helper_that_puts_the_held_model_in_eval_does_not_train_it() -> None:
    index = index_of(
        {
            "/project/main.py": """
                class Stepper:
                    def __init__(self, teacher, student):
                        self.teacher = teacher
                        self.student = student

                    def step(self, x):
                        self.teacher.eval()
                        (self.student(x) - self.teacher(x)).sum().backward()

                def fit(teacher, student, gen):
                    stepper = Stepper(teacher, student)
                    for x in gen:
                        stepper.step(x)
            """
        }
    )
    facts = index.function_facts("/project/main.py", "fit")
    assert facts is not None
    assert stepped_models(index, "/project/main.py", "fit", facts, facts["loops"][0]) == ["student"]


def test_layers_unpacked_from_a_factorys_tuple_have_the_kind_of_their_item() -> None:
    index = index_of(
        {
            "/project/nets.py": """
                from torch import nn

                class Backbone(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.conv = nn.Conv2d(3, 8, 3)
                        self.bn = nn.BatchNorm2d(8)
                        self.gn = nn.GroupNorm(2, 8)

                def split():
                    net = Backbone()
                    trunk = list([net.conv, net.bn])
                    trunk = nn.Sequential(*trunk)
                    tail = nn.Sequential(net.gn)
                    return trunk, tail

                class WithTrunk(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.trunk, self.tail = split()

                class WithTail(nn.Module):
                    def __init__(self):
                        super().__init__()
                        _, self.tail = split()
            """
        }
    )
    assert index.class_kind("/project/nets.py", "WithTrunk") == "bn"
    assert index.class_kind("/project/nets.py", "WithTail") == "none"
