"""`bnlint run --html`: the run's picture, parsed, and rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent(
    """\
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    data = TensorDataset(torch.randn(36, 4) + 3.0, torch.randint(0, 2, (36,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        model.train()
        for x, y in DataLoader(data, batch_size=16):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            model(torch.randn(8, 4))  # validation without model.eval()
    model.eval()
    with torch.no_grad():
        model(torch.randn(8, 4))
    """
)


class Page(HTMLParser):
    """The elements the tests read: tags with their attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def having(self, tag: str, **attributes: str) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and all(attrs.get(k) == v for k, v in attributes.items())
        ]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("html")
    (directory / "train.py").write_text(SCRIPT)
    subprocess.run(
        [sys.executable, "-m", "bnlint", "run", "--html", "report.html", "train.py"],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return directory / "report.html"


@pytest.fixture(scope="module")
def page(page_file: Path) -> Page:
    parsed = Page()
    parsed.feed(page_file.read_text(encoding="utf-8"))
    return parsed


def test_page_is_self_contained(page: Page) -> None:
    tags = {tag for tag, _ in page.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in page.elements:
        for value in attrs.values():
            assert not value.startswith(("http:", "https:", "//")), value


def test_each_batchnorm_layer_has_its_modes_and_batch_sizes(page: Page) -> None:
    (layer,) = page.having("div", **{"class": "layer", "data-path": "1"})
    assert layer["data-class"] == "BatchNorm1d"
    segments = [
        (attrs["data-mode"], attrs["data-batch"])
        for tag, attrs in page.elements
        if tag == "rect" and "segment" in attrs.get("class", "")
    ]
    # Per epoch: two batches of 16, the last of 4, then the no-grad validation of 8;
    # then the real eval forward.
    assert segments == [
        ("train", "16"),
        ("train", "4"),
        ("train", "8"),
        ("train", "16"),
        ("train", "4"),
        ("train", "8"),
        ("eval", "8"),
    ]


def test_running_statistics_drift_is_drawn(page: Page) -> None:
    (mean,) = [a for t, a in page.elements if t == "polyline" and a["class"] == "drift-mean"]
    # The inputs are centred near 3 while the statistics start at 0: the mean moves.
    assert abs(float(mean["data-last"]) - float(mean["data-first"])) > 0.05
    assert len(mean["points"].split()) >= 2


def test_findings_are_anchored_on_the_timeline_and_linked(page: Page) -> None:
    markers = page.having("path", **{"class": "marker", "data-code": "BN002"})
    assert markers
    clock = int(markers[0]["data-clock"])
    validation = [
        attrs
        for tag, attrs in page.elements
        if tag == "rect" and attrs.get("data-batch") == "8" and attrs.get("data-mode") == "train"
    ]
    # First seen at the first no-grad validation forward.
    assert int(validation[0]["data-start"]) <= clock <= int(validation[0]["data-end"])
    links = [a["href"] for t, a in page.elements if t == "a" and a.get("href", "").startswith("#")]
    rows = {a["id"] for t, a in page.elements if t == "tr" and a.get("id")}
    assert links and all(link[1:] in rows for link in links)
    assert page.having("tr", **{"data-code": "BN002"})


def test_page_renders_in_a_headless_browser(page_file: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless Chromium here (CI installs it: .ci/run)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rendered = Page()
    rendered.feed(dom)
    # The browser built the same document: every layer, segment and marker is there.
    assert rendered.having("div", **{"class": "layer", "data-path": "1"})
    assert len([a for t, a in rendered.elements if t == "rect"]) == 7
    assert rendered.having("path", **{"class": "marker", "data-code": "BN002"})
    shot = tmp_path / "page.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=960,600", page_file.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
