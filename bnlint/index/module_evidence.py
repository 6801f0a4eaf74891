"""Is an object an `nn.Module`? Evidence read from the code around it (BN008).

`x.training = False` is a bug only on a module (its children keep their mode); the
same attribute is the documented switch of objects that are not modules (a
stable-baselines3 `VecNormalize`, a validator, a data pipeline). A name counts as a
module here only on evidence in the scope that uses it (the function, or the class for
`self.<attr>`):

- it is bound to a module: a `torch.nn` class (`nn.Sequential(...)`,
  `nn.DataParallel(model)`), a torchvision model factory, `timm.create_model`, a call
  that takes `pretrained=`/`weights=` (the model-zoo convention), or a class of this
  file that is a module (it defines `forward` or derives from `nn.Module`), possibly
  through `.to()`/`.cuda()`/`.eval()` chains;
- it is called like a module (`model(x)`, `self.backbone(images)`);
- a method only modules have is called on it (`parameters()`, `state_dict()`,
  `load_state_dict()`, `modules()`, `children()`, `zero_grad()`, `apply()`, ...).

A part of such a name (`model.head`, `self.encoder.net`) is taken for a submodule.
Everything else is unknown.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from bnlint.index.ast_names import resolve
from bnlint.index.summary import dotted_name

# Methods that only `nn.Module` has among the objects that carry a `training` flag.
MODULE_ONLY_METHODS = frozenset(
    {
        "parameters",
        "named_parameters",
        "buffers",
        "named_buffers",
        "modules",
        "named_modules",
        "children",
        "named_children",
        "state_dict",
        "load_state_dict",
        "zero_grad",
        "apply",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_buffer",
        "register_parameter",
        "add_module",
        "get_submodule",
        "requires_grad_",
        "cuda",
        "half",
    }
)
# Methods that return the module they are called on.
_CHAINED = frozenset({"to", "cuda", "cpu", "float", "half", "double", "eval", "train"})
# `torch.nn` names that are not module classes.
_NOT_MODULES = frozenset({"Parameter", "UninitializedParameter", "Buffer"})
MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
_ZOO_KEYWORDS = frozenset({"pretrained", "weights", "pretrained_backbone"})


def module_classes(tree: ast.Module, aliases: Mapping[str, str]) -> frozenset[str]:
    """Top-level classes of the file that are modules: they define `forward` or derive
    from `nn.Module` (or from another such class of the file)."""
    found: set[str] = set()
    for statement in tree.body:
        if not isinstance(statement, ast.ClassDef):
            continue
        defines_forward = any(
            isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and member.name == "forward"
            for member in statement.body
        )
        bases = [resolve(base, aliases) for base in statement.bases]
        local_bases = {dotted_name(base) for base in statement.bases}
        torch_base = any(
            base is not None and (base in MODULE_BASES or _is_torch_module_class(base))
            for base in bases
        )
        if defines_forward or torch_base or local_bases & found:
            found.add(statement.name)
    return frozenset(found)


def module_names(
    scope: ast.AST, aliases: Mapping[str, str], local_modules: frozenset[str]
) -> set[str]:
    """The dotted names (`model`, `self.backbone`) that `scope` shows to be modules."""
    found: set[str] = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Call):
            called = dotted_name(node.func)
            if called is not None and not _is_library_call(node.func, aliases):
                found.add(called)
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in MODULE_ONLY_METHODS:
                receiver = dotted_name(func.value)
                if receiver is not None:
                    found.add(receiver)
        elif (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and _builds_module(node.value, aliases, local_modules)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = dotted_name(target)
                if name is not None:
                    found.add(name)
    return found


def is_known_module(receiver: str, known: set[str]) -> bool:
    """`receiver` or a name it is a part of is known to be a module."""
    parts = receiver.split(".")
    return any(".".join(parts[:end]) in known for end in range(1, len(parts) + 1))


def _is_library_call(func: ast.expr, aliases: Mapping[str, str]) -> bool:
    """`torch.zeros(...)`, `np.array(...)`: a library function, not a forward."""
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in aliases


def _builds_module(value: ast.expr, aliases: Mapping[str, str], local: frozenset[str]) -> bool:
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in _CHAINED
    ):
        value = value.func.value
    if not isinstance(value, ast.Call):
        return False
    if any(keyword.arg in _ZOO_KEYWORDS for keyword in value.keywords):
        return True
    if isinstance(value.func, ast.Name) and value.func.id in local:
        return True
    qualified = resolve(value.func, aliases)
    if qualified is None:
        return False
    if _is_torch_module_class(qualified):
        return True
    if qualified.startswith("torchvision.models.") and qualified.rsplit(".", 1)[-1][:1].islower():
        return True
    return qualified in ("timm.create_model", "timm.models.create_model")


def _is_torch_module_class(qualified: str) -> bool:
    """`torch.nn.Conv2d`, `torch.nn.parallel.DistributedDataParallel` (not
    `torch.nn.functional.relu` or `torch.nn.Parameter`)."""
    if not qualified.startswith("torch.nn.") or qualified.startswith("torch.nn.functional"):
        return False
    last = qualified.rsplit(".", 1)[-1]
    return last[:1].isupper() and last not in _NOT_MODULES
