"""bnlint.index.values: where a number passed to a layer is written."""

from __future__ import annotations

import ast

from bnlint.index.values import FileValues


def _use(source: str, callee: str) -> tuple[FileValues, ast.Call]:
    tree = ast.parse(source)
    call = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == callee
    )
    return FileValues(tree), call


def test_parameter_default_is_the_origin_of_its_use() -> None:
    values, call = _use("def block(c, m=0.9):\n    return BN(c, momentum=m)\n", "BN")
    origin = values.origin(call.keywords[0].value)
    assert origin is not None and origin.value == 0.9
    assert origin.node.lineno == 1 and origin.parameter is not None
    assert origin.parameter[1] == "m"


def test_attribute_set_once_from_a_parameter_follows_the_default() -> None:
    source = (
        "class B:\n    def __init__(self, rate=0.3):\n        self.rate = rate\n"
        "    def build(self):\n        return Drop(self.rate)\n"
    )
    values, call = _use(source, "Drop")
    origin = values.origin(call.args[0])
    assert origin is not None and origin.value == 0.3


def test_rebound_parameter_and_twice_assigned_attribute_are_unknown() -> None:
    source = (
        "def f(m=0.9):\n    m = m * 2\n    return BN(momentum=m)\n"
        "class B:\n    def __init__(self, r=0.3):\n        self.r = r\n"
        "    def grow(self):\n        self.r = 0.0\n    def build(self):\n"
        "        return Drop(self.r)\n"
    )
    values, bn = _use(source, "BN")
    assert values.origin(bn.keywords[0].value) is None
    _, drop = _use(source, "Drop")
    assert FileValues(values.tree).origin(drop.args[0]) is None


def test_module_constant_and_local_assigned_once() -> None:
    source = (
        "RATE = 0.5\nRATE2 = 0.1\nRATE2 = 0.2\ndef f():\n    k = RATE\n    return D(k, RATE2)\n"
    )
    values, call = _use(source, "D")
    origin = values.origin(call.args[0])
    assert origin is not None and origin.value == 0.5 and origin.node.lineno == 1
    assert values.origin(call.args[1]) is None


def test_guarded_positive_reads_if_and_conditional_expression() -> None:
    source = (
        "def f(p, q, r):\n    a = D(p) if p > 0 else None\n"
        "    if q is not None:\n        b = D(q)\n    else:\n        c = D(r)\n"
    )
    tree = ast.parse(source)
    values = FileValues(tree)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    guarded = {ast.unparse(c): values.guarded_positive(c, c.args[0]) for c in calls}
    assert guarded == {"D(p)": True, "D(q)": True, "D(r)": False}


def test_callers_of_a_class_pass_arguments_by_keyword_or_position() -> None:
    source = (
        "class Block:\n    def __init__(self, c, m=0.1):\n        self.bn = BN(c, momentum=m)\n"
        "a = Block(8, 0.9)\nb = Block(8, m=0.99)\nc = Block(8)\n"
    )
    tree = ast.parse(source)
    values = FileValues(tree)
    init = tree.body[0].body[0]  # type: ignore[attr-defined]
    passed = [values.argument_for(call, init, "m") for call in values.callers(init)]
    assert [None if p is None else ast.unparse(p) for p in passed] == ["0.9", "0.99", None]


def test_binding_is_the_one_value_a_name_holds() -> None:
    source = (
        "KW = dict(momentum=0.9)\nTWICE = 1\nTWICE = 2\n"
        "def f(param):\n    local = {'a': 1}\n    return g(local, KW, TWICE, param)\n"
    )
    values, call = _use(source, "g")
    bound = [values.binding(arg) for arg in call.args]  # type: ignore[arg-type]
    assert [None if b is None else ast.unparse(b) for b in bound] == [
        "{'a': 1}",
        "dict(momentum=0.9)",
        None,
        None,
    ]
