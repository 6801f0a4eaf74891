from tests.conftest import lint


def test_name_rebound_to_a_state_dict_is_not_reported() -> None:
    source = (
        "import torch\ndef f(m):\n    w = list(m.parameters())\n    w = m.state_dict()\n"
        "    torch.save(w, 'x.pt')\n"
    )
    assert lint(source, ["BN017"]) == []


def test_names_do_not_leak_between_functions() -> None:
    source = (
        "import torch\ndef a(m):\n    w = list(m.parameters())\n"
        "def b(w):\n    torch.save(w, 'x.pt')\n"
    )
    assert lint(source, ["BN017"]) == []


def test_suggestion_names_the_module() -> None:
    (finding,) = lint("import torch\ntorch.save(list(self.net.parameters()), p)\n", ["BN017"])
    assert "self.net.state_dict()" in finding.suggestion
