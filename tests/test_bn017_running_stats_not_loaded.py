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


def test_object_passed_by_keyword_is_the_one_checked() -> None:
    bad = "import torch\ntorch.save(f='w.pt', obj=list(model.parameters()))\n"
    good = "import torch\ntorch.save(f='w.pt', obj=model.state_dict())\n"
    assert [f.start.line for f in lint(bad, ["BN017"])] == [2]
    assert lint(good, ["BN017"]) == []


def test_dict_call_holding_parameters_is_reported_like_a_dict_literal() -> None:
    source = "import torch\ntorch.save(dict(epoch=3, weights=list(net.parameters())), 'c.pt')\n"
    (finding,) = lint(source, ["BN017"])
    assert "net.state_dict()" in finding.suggestion
    with_state = (
        "import torch\ntorch.save(dict(w=list(net.parameters()), m=net.state_dict()), 'c.pt')\n"
    )
    assert lint(with_state, ["BN017"]) == []


def test_parenthesised_receiver_keeps_its_parentheses() -> None:
    (finding,) = lint("import torch\ntorch.save((a or b).parameters(), p)\n", ["BN017"])
    assert "`(a or b).state_dict()`" in finding.suggestion


def test_names_are_scoped_to_async_functions_too() -> None:
    source = (
        "import torch\nasync def a(m):\n    w = list(m.parameters())\n"
        "    torch.save(w, 'x.pt')\ndef b(w):\n    torch.save(w, 'x.pt')\n"
    )
    assert [f.start.line for f in lint(source, ["BN017"])] == [4]
