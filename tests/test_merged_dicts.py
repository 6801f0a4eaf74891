"""Config dicts a project function builds by merging (`cfg = {}`, `cfg.update(defaults())`,
`cfg.update(loaded.settings)` of a file loaded by path) and returns: the batch size a
loader reads from them, and where BN003 reports it (bnlint.index.merged_dicts)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bnlint.config import Selection, load_settings
from bnlint.engine.run import check_paths
from bnlint.index import ProjectIndex, summarize_file
from bnlint.index.loaders import file_loaders
from bnlint.index.merged_dicts import ConfigValue
from bnlint.index.modes import batch_size

MAKER = """
    import importlib.util

    def defaults(tag):
        out = {
            "tag": tag,
            "loader": {"root": f"data/{tag}", "batch_size": 1, "workers": 2},
        }
        return out

    def assemble(settings_path, tag):
        out = {}
        out.update(defaults(tag))
        spec = importlib.util.spec_from_file_location("user_settings", settings_path)
        extra = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(extra)
        out.update(extra.overrides)
        return out
"""

MAIN = """
    import argparse
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from maker import assemble

    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", default="settings/small.py")
    args = parser.parse_args()

    def build_loader(section):
        return DataLoader(ds, batch_size=section["batch_size"], shuffle=True)

    def fit(conf, net):
        loader = build_loader(conf["loader"])
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

    conf = assemble(args.settings, "run")
    net = torchvision.models.resnet18()
    fit(conf, net)
"""


def index_of(files: dict[str, str]) -> ProjectIndex:
    summaries = {path: summarize_file(path, textwrap.dedent(text)) for path, text in files.items()}
    return ProjectIndex.from_summaries("/project", summaries)


def loader_batch(index: ProjectIndex) -> object:
    ((function, facts, _, loader),) = list(file_loaders(index, "/project/main.py"))
    return batch_size(index, "/project/main.py", facts, loader, function)


def test_a_merged_config_keeps_the_defaults_section_a_loaded_file_does_not_replace() -> None:
    index = index_of(
        {
            "/project/maker.py": MAKER,
            "/project/main.py": MAIN,
            "/project/settings/small.py": 'overrides = {"train_epochs": 5}\n',
        }
    )
    size = loader_batch(index)
    assert size == 1
    assert isinstance(size, ConfigValue)
    assert size.origin == ("/project/maker.py", "defaults", ("loader", "batch_size"))


def test_a_loaded_file_that_replaces_the_section_decides_the_batch_size() -> None:
    index = index_of(
        {
            "/project/maker.py": MAKER,
            "/project/main.py": MAIN,
            "/project/settings/small.py": (
                'overrides = {"loader": {"batch_size": 24}, "train_epochs": 5}\n'
            ),
        }
    )
    assert loader_batch(index) == 24


def test_a_merge_with_a_file_bnlint_cannot_read_is_unknown() -> None:
    index = index_of({"/project/maker.py": MAKER, "/project/main.py": MAIN})
    assert loader_batch(index) == "?"
    unreadable = MAKER.replace("out.update(extra.overrides)", "out.update(load_yaml(tag))")
    index = index_of(
        {
            "/project/maker.py": unreadable,
            "/project/main.py": MAIN,
            "/project/settings/small.py": 'overrides = {"train_epochs": 5}\n',
        }
    )
    assert loader_batch(index) == "?"


def test_a_dict_written_outside_straight_line_updates_is_not_read() -> None:
    branchy = MAKER.replace(
        "        out.update(defaults(tag))\n",
        "        if tag:\n            out.update(defaults(tag))\n",
    )
    index = index_of(
        {
            "/project/maker.py": branchy,
            "/project/main.py": MAIN,
            "/project/settings/small.py": 'overrides = {"train_epochs": 5}\n',
        }
    )
    assert loader_batch(index) == "?"


def test_bn003_reports_the_one_in_the_config_maker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the loaded settings path is relative to the run's directory
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "small.py").write_text('overrides = {"train_epochs": 5}\n')
    (tmp_path / "maker.py").write_text(textwrap.dedent(MAKER))
    (tmp_path / "main.py").write_text(textwrap.dedent(MAIN))
    settings = load_settings(tmp_path)
    enabled = settings.enabled_codes(Selection(select=("BN003",)))
    for checked in ("maker.py", "main.py"):
        result = check_paths([tmp_path / checked], settings, enabled, cwd=tmp_path, use_cache=False)
        found = [(Path(f.path).name, f.start.line) for f in result.findings]
        assert found == ([("maker.py", 7)] if checked == "maker.py" else [])
    result = check_paths([tmp_path], settings, enabled, cwd=tmp_path, use_cache=False)
    assert [(Path(f.path).name, f.start.line) for f in result.findings] == [("maker.py", 7)]
    assert "main.py:13" in result.findings[0].message
