"""Mode facts along one function's statements (module-level script code counts as a
function named `<module>`).

Objects are named by *keys*: the dotted text of the expression (`model`, `self.model`,
`model.backbone`); DataParallel's `.module` is dropped, so `model.module.eval()` acts
on `model`. In textual order the facts record where `.eval()` / `.train()` /
`.train(False)` / `requires_grad_(False)` happen and on which key, where a key is
called (a forward) and under what context (`no_grad`, a loop over which loader, a loop
that calls `backward()`), calls to other functions with the keys passed to them, what
each key is bound to (a constructor, a factory, another key, a parameter), and the
DataLoaders created with their batch size.
"""

from __future__ import annotations

import ast
import builtins
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.index.summary import LayerBuilder, Names, Positions

Json = dict[str, Any]

_NO_GRAD = ("no_grad", "inference_mode")
# Calls that only move or wrap a model: the result is the same model.
_SAME_MODEL_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "double", "half", "to_empty", "train", "eval"}
)
_WRAPPERS = frozenset(
    {"DataParallel", "DistributedDataParallel", "DDP", "compile", "convert_sync_batchnorm"}
)
_ITERATION_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "zip", "progress_bar", "track"})
_MODEL_USE_METHODS = frozenset(
    {
        "parameters",
        "named_parameters",
        "state_dict",
        "load_state_dict",
        "train",
        "eval",
        "to",
        "cuda",
        "zero_grad",
    }
)
# Methods of containers, strings, tensors and loggers: a call of one is never followed
# into a project class (it would only make the summary longer).
_PLAIN_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "add",
        "get",
        "items",
        "keys",
        "values",
        "copy",
        "format",
        "join",
        "split",
        "strip",
        "replace",
        "startswith",
        "endswith",
        "item",
        "numpy",
        "tolist",
        "cpu",
        "detach",
        "size",
        "view",
        "reshape",
        "permute",
        "squeeze",
        "unsqueeze",
        "float",
        "long",
        "sum",
        "mean",
        "max",
        "min",
        "argmax",
        "info",
        "debug",
        "warning",
        "error",
        "log",
        "write",
        "flush",
        "close",
        "add_scalar",
        "add_scalars",
        "set_description",
        "set_postfix",
    }
)
# Calls into these never reach project code: no "call" event for them.
_LIBRARIES = frozenset(
    {
        "torch",
        "numpy",
        "os",
        "sys",
        "math",
        "time",
        "logging",
        "json",
        "typing",
        "collections",
        "functools",
        "itertools",
        "random",
        "re",
        "tqdm",
        "PIL",
        "cv2",
        "pathlib",
        "argparse",
        "copy",
        "warnings",
        "torchvision",
        "timm",
        "shutil",
        "pickle",
        "datetime",
        "matplotlib",
        "pandas",
        "scipy",
        "sklearn",
        "yaml",
        "glob",
        "subprocess",
        "dataclasses",
        "enum",
        "contextlib",
        "inspect",
        "abc",
        "operator",
        "string",
        "struct",
        "io",
        "csv",
        "hashlib",
        "platform",
        "threading",
        "multiprocessing",
        "socket",
        "urllib",
        "requests",
        "builtins",
    }
)
_BUILTINS = frozenset(dir(builtins))
DUMMY_INPUTS = frozenset({"randn", "rand", "zeros", "ones", "empty", "randint", "randn_like"})
_DUMMY_INPUTS = DUMMY_INPUTS
_NOT_FORWARD = frozenset({"print", "len", "range", "isinstance", "super", "self"})
# Functions passed to `module.apply` that put BN in eval.
_APPLIED_FREEZE = re.compile(r"freeze|frozen|bn|batchnorm|norm_?eval|eval_?norm|fix_?norm")
# Method names of a model's own freeze API (`freeze_bn()`, `fix_bn()`, `set_bn_eval()`).
_FREEZE_METHOD = re.compile(r"freeze|frozen|fix_?bn|bn_?eval|norm_?eval", re.IGNORECASE)


def key_of(node: ast.AST | None) -> str | None:
    """`model`, `self.model`, `model.backbone` for Name/Attribute chains (DataParallel's
    `.module` removed); None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        if node.attr != "module":
            parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class FunctionFacts:
    def __init__(
        self,
        names: Names,
        layers: LayerBuilder,
        positions: Positions,
        owner: str | None = None,
        closure: frozenset[str] = frozenset(),
    ) -> None:
        self.names = names
        self.layers = layers
        self.positions = positions
        self.owner = owner
        # Names a nested function reads from its enclosing functions (their parameters
        # and local names): `model(x)` there runs the encloser's model.
        self.closure = closure
        # Functions defined in this one so far: a call of one is a call of a project
        # function (the index names it `outer/inner`), not an opaque object's.
        self.inner: set[str] = set()
        self.events: list[Json] = []
        self.bindings: dict[str, list[Json]] = {}
        self.loaders: dict[str, Json] = {}
        self.loops: list[Json] = []
        self.argparse: dict[str, Any] = {}
        self.argparse_at: dict[str, list[int]] = {}
        # Names bound to an iteration wrapper of a loader (`bar = tqdm(loader)`,
        # `it = iter(loader)`): a loop over them, or `next(it)`, draws from the loader.
        self.iter_aliases: dict[str, str] = {}
        # Names bound to dict literals (`loader_kwargs = {"batch_size": 1, ...}`).
        self.dicts: dict[str, dict[str, Any]] = {}
        # Names bound to (an item of) what a project function returns:
        # `train_loader, val_loader = make_loaders(cfg)`.
        self.results: dict[str, list[Json]] = {}
        # Keys a `return a, b, c` hands back, by position (None where not a key).
        self.returned_items: list[list[str | None]] = []
        # Dicts written in place so far (`cfg["bs"] = 4`, `cfg.update(...)`): a
        # parameter among them no longer holds what the caller passed.
        self.written: set[str] = set()
        # How many times each plain name is assigned: a name bound once to a project
        # function's result hands on what it returns (`_passed_value`).
        self.assigned: dict[str, int] = {}
        # Names bound to an item of a key by literal labels (`tr = self.sets[0][0]`).
        self.item_aliases: dict[str, str] = {}
        # Loader keys a `return` hands back, with their place in a returned tuple.
        self.loader_returns: dict[str, int | None] = {}
        self.returns: list[Json] = []
        self.containers: list[Json] = []
        self.env: dict[str, Json] = {}
        self.params: list[str] = []
        # Branches and loops in textual (pre-)order, for control flow (BN006).
        self.blocks: list[Json] = []
        # Names bound to the result of a call that received keys (`ema = ModelEma(model)`):
        # a method call on them may act on those keys.
        self.holders: dict[str, list[str]] = {}
        # Names bound to a tensor made up on the spot (`inp = torch.Tensor(np.ones(s))`).
        self.made_up: set[str] = set()
        # Names bound to a list/tuple of keys (`nets = [encoder, decoder]`), and the
        # loop variables that stand for several models in turn: `for m in nets:`,
        # `for m in [enc, dec]:` (m → the keys) or `for m in models:` over a parameter
        # (m → `models[*]`, its elements).
        self.members: dict[str, list[str]] = {}
        self.loop_members: dict[str, list[str]] = {}
        # The call an expression statement makes (`model(images)` on its own line): a
        # forward whose output nobody reads refreshes statistics, it does not evaluate.
        self.bare_call: ast.AST | None = None
        # The innermost enclosing contexts while walking.
        self.nograd = 0
        self.loop_stack: list[Json] = []
        # Enclosing `if phase == "train":` tests on a parameter (`{"param", "is"|"not"}`),
        # recorded on `backward()` events: a step method shared by phases trains only
        # for the phases its callers name (bnlint.index.steppers).
        self.guards: list[Json] = []

    def run(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> Json:
        args = function.args
        self.params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        defaults: Json = {}
        positional = [*args.posonlyargs, *args.args]
        for arg, default in zip(
            positional[len(positional) - len(args.defaults) :], args.defaults, strict=False
        ):
            defaults[arg.arg] = _default(default, self.names)
        for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=False):
            if kw_default is not None:
                defaults[arg.arg] = _default(kw_default, self.names)
        decorated_nograd = any(_is_nograd(d) for d in function.decorator_list)
        if decorated_nograd:
            self.nograd += 1
        self._block(function.body)
        facts = self._facts()
        facts.update(
            params=self.params,
            defaults=defaults,
            nograd=decorated_nograd,
            owner=self.owner,
            pos=self.positions.of(function),
        )
        return facts

    def run_returns(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> Json | None:
        """Only the layers a helper returns (`def conv_bn(...): return nn.Sequential(...)`)
        and its moving-average loops (`_momentum_update(self)`, for BN005)."""
        from bnlint.index.summary import _statements

        args = function.args
        self.params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        for statement in _statements(function.body):
            if isinstance(statement, ast.Assign | ast.AugAssign | ast.Expr):
                self.layers.track(statement, self.env)
            elif isinstance(statement, ast.Return) and statement.value is not None:
                spec = self.layers.spec(statement.value, self.env)
                if spec is not None:
                    self.returns.append({"spec": spec})
            elif isinstance(statement, ast.For):
                self._averaging_loop(statement)
        if not self.returns and not self.events:
            return None
        facts = self._facts()
        facts.update(
            params=self.params,
            defaults={},
            nograd=False,
            owner=self.owner,
            pos=self.positions.of(function),
        )
        return facts

    def bare(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> Json:
        """Facts with no events, for a function other files read only for what it
        returns (a config dict it builds, bnlint.index.merged_dicts)."""
        args = function.args
        facts = self._facts()
        facts.update(
            params=[a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]],
            defaults={},
            nograd=False,
            owner=self.owner,
            pos=self.positions.of(function),
        )
        return facts

    def run_module(self, body: list[ast.stmt]) -> Json:
        self._block(body)
        facts = self._facts()
        facts.update(params=[], defaults={}, nograd=False, owner=None, pos=[1, 0, 1, 0])
        return facts

    def _facts(self) -> Json:
        facts: Json = {
            "events": self.events,
            "bindings": self.bindings,
            "loaders": self.loaders,
            "loops": self.loops,
            "argparse": self.argparse,
            "returns": self.returns,
            "layers": self.containers,
        }
        # Loader flow (bnlint.index.loaders); absent when empty to keep summaries small.
        for name, value in (
            ("argparse_at", self.argparse_at),
            ("results", self.results),
            ("returned_items", self.returned_items),
            ("loader_returns", self.loader_returns),
            ("item_aliases", self.item_aliases),
            # Names assigned more than once (a branch may bind what `bindings` omits).
            ("rebound", {name: n for name, n in self.assigned.items() if n > 1}),
        ):
            if value:
                facts[name] = value
        blocks = [block for block in self.blocks if block["last"] > block["first"]]
        if blocks:
            facts["blocks"] = blocks
        return facts

    # -- statements -------------------------------------------------------------------
    def _block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            self.inner.add(statement.name)
            return
        if isinstance(statement, ast.ClassDef):
            return
        if isinstance(statement, ast.AugAssign | ast.Expr):
            self.layers.track(statement, self.env)
        if isinstance(statement, ast.Expr):
            self.bare_call = statement.value
        if isinstance(statement, ast.Assign):
            self._expressions(statement.value)
            for target in statement.targets:
                self._bind(target, statement.value)
                self._expressions(target, store=True)
            # After the binding: `features = nn.Sequential(*features)` reads the list
            # `features` held before this statement.
            self.layers.track(statement, self.env)
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            self._expressions(statement.value)
            self._bind(statement.target, statement.value)
        elif isinstance(statement, ast.Return) and statement.value is not None:
            self._expressions(statement.value)
            spec = self.layers.spec(statement.value, self.env)
            returned = key_of(statement.value)
            if returned is not None and len(self.bindings.get(returned, [])) > 1:
                # `phi = LeNet5()` / `phi = get_resnet()` in branches, then `return phi`:
                # every binding, not only the last one written.
                self.returns.append({"key": returned})
            elif spec is not None:
                self.returns.append({"spec": spec})
            else:
                key = key_of(statement.value)
                if key is not None:
                    self.returns.append({"key": key})
            self._returned_loaders(statement.value)
        elif isinstance(statement, ast.For | ast.AsyncFor):
            self._expressions(statement.iter)
            members = _member_keys(statement.iter)
            if not members and isinstance(statement.iter, ast.Name):
                members = self.members.get(statement.iter.id, [])
            # A loop over a non-empty list of keys runs at least once; over a parameter's
            # elements, nobody knows.
            runs = bool(members)
            members = members or _members(statement.iter, self.params)
            variable = statement.target.id if isinstance(statement.target, ast.Name) else None
            outer = dict(self.loop_members)
            if variable is not None:
                self.loop_members.pop(variable, None)
                if members:
                    self.loop_members[variable] = members
            self._loop(statement, self._loader_key(statement.iter), runs=runs)
            self.loop_members = outer
            if isinstance(statement.target, ast.Name | ast.Tuple):
                self._parameter_loop(statement)
                self._module_loop(statement)
                self._averaging_loop(statement)
        elif isinstance(statement, ast.While):
            self._expressions(statement.test)
            self._loop(statement, None)
        elif isinstance(statement, ast.With | ast.AsyncWith):
            nograd = any(_is_nograd(item.context_expr) for item in statement.items)
            for item in statement.items:
                self._expressions(item.context_expr)
                if item.optional_vars is not None:
                    self._bind_iteration(item.optional_vars, item.context_expr)
            self.nograd += nograd
            self._block(statement.body)
            self.nograd -= nograd
        elif isinstance(statement, ast.If):
            self._expressions(statement.test)
            self._branches(
                statement.body, statement.orelse, _phase_test(statement.test, self.params)
            )
        elif isinstance(statement, ast.Try):
            self._block(statement.body)
            for handler in statement.handlers:
                self._branches(handler.body, [])
            self._block(statement.orelse)
            self._block(statement.finalbody)
        else:
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.expr):
                    self._expressions(child)
        if self.loop_stack and isinstance(
            statement, ast.Break | ast.Continue | ast.Return | ast.Raise
        ):
            # Where control goes next: out of the loop, to its head, out of the function.
            jump = (
                "break"
                if isinstance(statement, ast.Break)
                else "continue"
                if isinstance(statement, ast.Continue)
                else "exit"
            )
            self._event("jump", None, statement, to=jump)

    def _branches(
        self, body: list[ast.stmt], orelse: list[ast.stmt], phase: Json | None = None
    ) -> None:
        """An `if` (or an `except` handler, with no `else`): events of `body` are
        [first, mid), those of `orelse` [mid, last)."""
        block: Json = {"k": "if", "first": len(self.events)}
        self.blocks.append(block)
        self.guards.append({"param": phase["param"], "is": phase["values"]} if phase else {})
        self._block(body)
        self.guards[-1] = {"param": phase["param"], "not": phase["values"]} if phase else {}
        block["mid"] = len(self.events)
        self._block(orelse)
        self.guards.pop()
        block["last"] = len(self.events)

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            self._unpack(target, value)
            return
        if isinstance(target, ast.Subscript):
            # `cfg["batch_size"] = args.bs`: the dict is no longer the literal.
            base: ast.expr = target
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                self.dicts.pop(base.id, None)
                self.written.add(base.id)
        key = key_of(target)
        if key is None:
            return
        members = _member_keys(value)
        if members:
            self.members[key] = members
        else:
            self.members.pop(key, None)
        if isinstance(target, ast.Name):
            self.assigned[key] = self.assigned.get(key, 0) + 1
            entries = _dict_literal(value) if isinstance(value, ast.Dict) else None
            if entries is not None:
                self.dicts[key] = entries
            else:
                self.dicts.pop(key, None)
        self._bind_iteration(target, value)
        self._bind_result(key, value, None)
        self._bind_listed_results(key, value)
        self._bind_item(key, value)
        self._loader_collection(key, value)
        if _made_up_tensor(value):
            self.made_up.add(key)
        else:
            self.made_up.discard(key)
        binding = self._binding(value)
        if binding is not None:
            self.bindings.setdefault(key, []).append(binding)
        # `model = Net().cuda().eval()`: the chained mode call acts on the bound key.
        chained = value
        while isinstance(chained, ast.Call) and isinstance(chained.func, ast.Attribute):
            if chained.func.attr == "eval":
                self._event("eval", key, chained)
                break
            chained = chained.func.value
        # `model.training = False` flips only the top flag (BN008 says so); the mode
        # facts take the author's intent so BN002 does not report the same line twice.
        if (
            isinstance(target, ast.Attribute)
            and target.attr == "training"
            and _literal(value) is False
        ):
            owner = key_of(target.value)
            if owner is not None:
                self._event("eval", owner, target)
        if isinstance(value, ast.Call):
            held = _argument_keys(value)
            if held:
                self.holders[key] = held
            callee = self.names.qualify(value.func) or ""
            made = (
                self._loader(value)
                if _is_loader_call(value, self.names)
                else self._generator_call(value)
            )
            if made is not None and not _same_loader(self.loaders.get(key), made):
                self.loaders[key] = made
            last = callee.rsplit(".", 1)[-1]
            if last in ("Sequential",):
                spec = self.layers.spec(value, self.env)
                if spec is not None:
                    self.containers.append({"key": key, "spec": spec})

    # -- loader flow (read by bnlint.index.loaders) ---------------------------------------
    def _unpack(self, target: ast.Tuple | ast.List, value: ast.expr) -> None:
        """`a, b = f(x), g(y)` binds pairwise; `a, b = make()` binds each name to an
        item of what `make` returns."""
        if any(isinstance(element, ast.Starred) for element in target.elts):
            return
        if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
            for element, item in zip(target.elts, value.elts, strict=True):
                self._bind(element, item)
            return
        for position, element in enumerate(target.elts):
            key = key_of(element)
            if isinstance(element, ast.Name):
                self.assigned[element.id] = self.assigned.get(element.id, 0) + 1
            if key is not None:
                self._bind_result(key, value, position)

    def _bind_result(self, key: str, value: ast.expr, item: int | None) -> None:
        if not isinstance(value, ast.Call):
            return
        callee = self._callee(value.func)
        if callee is not None:
            entry = {"fn": callee, "item": item}
            if entry not in self.results.setdefault(key, []):
                self.results[key].append(entry)

    def _bind_listed_results(self, key: str, value: ast.expr) -> None:
        """`gen_set = [make_loaders(cfg)]`: the item at each place of a list or tuple
        literal is bound to what the project function called there returns
        (`gen_set[0]`), so its loaders are `gen_set[0][0]`, ..."""
        if isinstance(value, ast.List | ast.Tuple):
            for position, element in enumerate(value.elts):
                self._bind_result(f"{key}[{position}]", element, None)

    def _bind_item(self, key: str, value: ast.expr) -> None:
        """`train_loader = self.loaders[0]`, `data = sets["train"]`: a name bound to an
        item of a key, by literal labels (read by bnlint.index.loaders)."""
        if not isinstance(value, ast.Subscript):
            self.item_aliases.pop(key, None)  # most bindings: no item read
            return
        labels: list[str] = []
        node: ast.expr = value
        while isinstance(node, ast.Subscript):
            label = _literal(node.slice)
            if not isinstance(label, str | int) or isinstance(label, bool) or label == "?":
                self.item_aliases.pop(key, None)
                return
            labels.append(f"[{label}]")
            node = node.value
        base = key_of(node)
        if labels and base is not None and "[" not in key:
            self.item_aliases[key] = base + "".join(reversed(labels))
        else:
            self.item_aliases.pop(key, None)

    def _callee(self, func: ast.expr) -> str | None:
        """The project-level name of a called function (`make_loaders`,
        `data.make_loaders`, `self.build_loaders`), None for a library call."""
        callee = self.names.qualify(func)
        if (
            callee is None
            and isinstance(func, ast.Attribute)
            and key_of(func) == (f"self.{func.attr}")
        ):
            callee = f"self.{func.attr}"
        if callee is None or callee.split(".", 1)[0] in _LIBRARIES:
            return None
        return callee

    def _bind_iteration(self, target: ast.expr, value: ast.expr) -> None:
        key = key_of(target)
        if key is None:
            return
        if (
            isinstance(value, ast.Call)
            and value.args
            and dotted_tail(value.func) in _ITERATION_WRAPPERS
        ):
            inner = self._loader_key(value)
            if inner is not None:
                self.iter_aliases[key] = inner
                return
        self.iter_aliases.pop(key, None)

    def _loader_key(self, node: ast.expr) -> str | None:
        """The loader an iteration draws from, through wrappers and names bound to them."""
        key = _iterated_key(node)
        return self.iter_aliases.get(key, key) if key is not None else None

    def _loader_collection(self, key: str, value: ast.expr) -> None:
        """`loaders = {"train": DataLoader(...), ...}` and
        `{split: DataLoader(...) for split in splits}`: each loader is kept as `key[name]`
        (`key[]` when the name is not a literal)."""
        if isinstance(value, ast.Dict):
            for name, item in zip(value.keys, value.values, strict=True):
                if isinstance(item, ast.Call) and _is_loader_call(item, self.names):
                    label = _literal(name) if name is not None else "?"
                    label = label if isinstance(label, str | int) and label != "?" else ""
                    self.loaders[f"{key}[{label}]"] = self._loader(item)
        elif isinstance(value, ast.DictComp | ast.ListComp):
            item = value.value if isinstance(value, ast.DictComp) else value.elt
            if isinstance(item, ast.Call) and _is_loader_call(item, self.names):
                self.loaders[f"{key}[]"] = self._loader(item)

    def _returned_loaders(self, value: ast.expr) -> None:
        items = value.elts if isinstance(value, ast.Tuple | ast.List) else [value]
        if isinstance(value, ast.Tuple) and len(items) > 1:
            keys = [key_of(item) for item in items]
            if any(keys) and keys not in self.returned_items:
                self.returned_items.append(keys)
        for position, item in enumerate(items):
            key = key_of(item)
            if key is None:
                # `return DataLoader(...)`, `return {split: DataLoader(...) ...}`: the
                # loader is known by its place in what the function returns.
                key = f"<return{position}>"
                if isinstance(item, ast.Call) and _is_loader_call(item, self.names):
                    self.loaders[key] = self._loader(item)
                else:
                    self._loader_collection(key, item)
            if key in self.loaders or any(k.startswith(key + "[") for k in self.loaders):
                self.loader_returns[key] = position if len(items) > 1 else None

    def _binding(self, value: ast.expr) -> Json | None:
        if isinstance(value, ast.Name) and value.id in self.params:
            return {"param": value.id}
        if isinstance(value, ast.Name | ast.Attribute):
            key = key_of(value)
            return {"alias": key} if key else None
        if not isinstance(value, ast.Call):
            return None
        func = value.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _SAME_MODEL_METHODS
            and isinstance(func.value, ast.Call)
        ):
            return self._binding(func.value)
        if isinstance(func, ast.Attribute) and func.attr in _SAME_MODEL_METHODS:
            inner = key_of(func.value)
            if inner is not None and self.names.qualify(func.value) is None:
                return {"alias": inner}
        callee = self.names.qualify(func)
        if callee is not None and callee.rsplit(".", 1)[-1] in _WRAPPERS and value.args:
            inner = key_of(value.args[0])
            if inner is not None:
                return {"alias": inner}
            return self._binding(value.args[0])
        if (
            callee is None
            and isinstance(func, ast.Attribute)
            and func.attr in _WRAPPERS
            and value.args
        ):
            inner = key_of(value.args[0])
            if inner is not None:
                return {"alias": inner}
        if (
            callee is None
            and isinstance(func, ast.Attribute)
            and (key_of(func) or "").startswith("self.")
        ):
            return {"method": func.attr, "owner": self.owner}
        spec = self.layers.spec(value, self.env)
        if spec is None or not (spec.get("call") or spec.get("choose")):
            return None
        return {"spec": spec}

    def _loader(self, call: ast.Call) -> Json:
        loader: Json = {"pos": self.positions.of(call), "batch": "missing"}
        if not _is_torch_loader(call, self.names):
            # A project subclass (`class FastDataLoader(DataLoader)`) may change the
            # default batch size: a missing one is not known to be 1.
            loader["batch"] = "?"
        if len(call.args) >= 2:
            loader["batch"] = self._value(call.args[1])
        for keyword in call.keywords:
            if keyword.arg is None:
                spread = self._dict_of(keyword.value)
                if spread is None:
                    loader["batch"] = "?"
                    loader["opaque"] = True  # **kwargs: any keyword may be in there
                    continue
                # `DataLoader(ds, **loader_kwargs)` with a dict literal bound in view.
                for name, value in spread.items():
                    self._loader_keyword(loader, name, value)
            else:
                self._loader_keyword(loader, keyword.arg, keyword.value)
        if any(isinstance(arg, ast.Starred) for arg in call.args):
            loader["batch"] = "?"
        return loader

    def _generator_call(self, call: ast.Call) -> Json | None:
        """`Generator(lines, shape).generate()`: a method called on a project object
        built in place, which may be a batching generator (bnlint.index.batch_generators).
        Kept as a loader whose batch size `loaders.generator_batch` reads from the class."""
        func = call.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)):
            return None
        built = func.value
        callee = self._callee(built.func)
        if callee is None or callee.startswith("self."):
            return None
        if any(isinstance(a, ast.Starred) for a in built.args) or any(
            k.arg is None for k in built.keywords
        ):
            return None
        passed: Json = {f"#{i}": self._value(arg) for i, arg in enumerate(built.args)}
        passed.update({k.arg: self._value(k.value) for k in built.keywords if k.arg})
        return {
            "pos": self.positions.of(call),
            "batch": "?",
            "generator": {"cls": callee, "method": func.attr, "passed": passed},
        }

    def _loader_keyword(self, loader: Json, name: str, value: Any) -> None:
        """One keyword of a DataLoader call: `value` is an expression, or the literal
        (or "?") that a readable kwargs dict holds."""
        expression = isinstance(value, ast.expr)
        if name == "batch_size":
            loader["batch"] = self._value(value) if expression else value
        elif name == "batch_sampler":
            loader["batch"] = "?"
            loader["sampler"] = True
        elif name == "drop_last":
            loader["drop_last"] = _literal(value) if expression else value
        elif name == "shuffle":
            loader["shuffle"] = _literal(value) if expression else value
        elif name == "sampler":
            loader["sampler"] = True

    def _dict_of(self, node: ast.expr) -> dict[str, Any] | None:
        """The literal entries of a dict a name is bound to in this function or at the
        top of the module ("?" for entries that are not literals), or None."""
        if isinstance(node, ast.Dict):
            return _dict_literal(node)
        if not isinstance(node, ast.Name):
            return None
        if node.id in self.dicts:
            return self.dicts[node.id]
        if node.id in self.bindings or node.id in self.params:
            return None
        alias = self.names.aliases.get(node.id)
        return alias.get("dict") if isinstance(alias, dict) else None

    def _passed_value(self, node: ast.expr) -> Any:
        """What an argument hands a project function, for batch sizes read from a
        parameter: an integer literal, a readable dict (`{"dict": entries}`, a literal
        or an item of one), or this function's own parameter or an item of it
        (`{"param": "cfg", "keys": ["data"]}` for `cfg["data"]`), resolved through
        this function's callers in turn (bnlint.index.loaders). None otherwise."""
        constant = _literal(node)
        if constant != "?":
            return (
                constant if isinstance(constant, int) and not isinstance(constant, bool) else None
            )
        labels: list[str] = []
        base = node
        while isinstance(base, ast.Subscript):
            label = _literal(base.slice)
            if not isinstance(label, str) or label == "?":
                return None
            labels.append(label)
            base = base.value
        labels.reverse()
        if isinstance(base, ast.Name) and base.id in self.params:
            if base.id in self.written or base.id in self.dicts or base.id in self.bindings:
                return None
            return {"param": base.id, "keys": labels} if labels else {"param": base.id}
        if (
            isinstance(base, ast.Name)
            and self.assigned.get(base.id) == 1
            and base.id not in self.written
            and len(results := self.results.get(base.id, [])) == 1
            and results[0]["item"] is None
        ):
            # `config = get_config(args.config_path)`: what the function returns
            # (a config dict it builds, bnlint.index.merged_dicts).
            return {"returned": results[0]["fn"], "keys": labels}
        entries: Any = self._dict_of(base)
        for label in labels:
            if not isinstance(entries, dict):
                return None
            entries = entries.get(label, "?")
        if isinstance(entries, dict):
            return {"dict": entries}
        return entries if isinstance(entries, int) and not isinstance(entries, bool) else None

    def _value(self, node: ast.expr) -> Any:
        """A batch-size expression: a literal, a parameter, a module constant, an
        argparse option (`args.batch_size`), or "?"."""
        constant = _literal(node)
        if constant != "?":
            return constant
        if isinstance(node, ast.Name):
            if node.id in self.params:
                return {"param": node.id}
            return {"name": node.id}
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return {"option": node.attr}
        if isinstance(node, ast.Subscript):
            passed = self._passed_value(node)
            if isinstance(passed, dict) and ("param" in passed or "returned" in passed):
                # `config["train_batch_size"]` of a parameter: what the callers pass.
                return passed
            # `cfg["batch_size"]`, `CONFIG["train"]["bs"]` of a dict literal in view.
            labels: list[Any] = []
            while isinstance(node, ast.Subscript):
                labels.append(_literal(node.slice))
                node = node.value
            entries: Any = self._dict_of(node)
            for label in reversed(labels):
                if not isinstance(entries, dict) or not isinstance(label, str):
                    return "?"
                entries = entries.get(label, "?")
            return entries if isinstance(entries, int) else "?"
        return "?"

    def _loop(
        self,
        statement: ast.For | ast.AsyncFor | ast.While,
        iterated: str | None,
        runs: bool = False,
    ) -> None:
        """Record a loop (what it iterates, which events its body holds) and walk it;
        `runs`: the body runs at least once (a loop over a non-empty list of keys)."""
        loop: Json = {
            "iter": iterated,
            "pos": self.positions.of(statement),
            "backward": False,
            "forwards": [],
            "calls": [],
            "first": len(self.events),
        }
        self.loops.append(loop)
        block: Json = {"k": "loop", "loop": len(self.loops) - 1, "first": loop["first"]}
        if runs:
            block["runs"] = True
        self.blocks.append(block)
        self.loop_stack.append(loop)
        self._block(statement.body)
        self.loop_stack.pop()
        loop["last"] = block["last"] = len(self.events)
        self._block(statement.orelse)

    def _parameter_loop(self, loop: ast.For | ast.AsyncFor) -> None:
        """`for p in model.backbone.parameters(): p.requires_grad = False` freezes
        `model.backbone` (unless a condition spares BN/norm parameters)."""
        iterated = loop.iter
        if not (isinstance(iterated, ast.Call) and isinstance(iterated.func, ast.Attribute)):
            return
        if iterated.func.attr not in ("parameters", "named_parameters"):
            return
        owner = key_of(iterated.func.value)
        if owner is None:
            return
        spares_norm = False
        freezes = False
        for node in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
            if isinstance(node, ast.If):
                text = ast.unparse(node.test).lower()
                # `if name not in ("fc.weight", "fc.bias")` spares the head, not BN.
                names_head = any(word in text for word in ("fc", "head", "classifier"))
                if any(word in text for word in ("bn", "norm")) or (
                    "bias" in text and not names_head
                ):
                    spares_norm = True
            if _sets_requires_grad_false(node):
                freezes = True
        if freezes and not spares_norm:
            self._event("freeze", owner, loop)
        elif not freezes and _opens_parameters(loop.body):
            # `for p in model.head.parameters(): p.requires_grad = True`: re-opened.
            self._event("unfreeze", owner, loop)

    def _averaging_loop(self, loop: ast.For | ast.AsyncFor) -> None:
        """`for q, k in zip(student.parameters(), teacher.parameters()):
        k.data.mul_(m).add_(...)`: the parameters of both are tied by a moving average
        (a momentum encoder or an EMA teacher), so `teacher`'s `requires_grad=False`
        is not a frozen feature extractor (BN005)."""
        iterated = loop.iter
        if not (isinstance(iterated, ast.Call) and dotted_tail(iterated.func) == "zip"):
            return
        owners = [
            key_of(arg.func.value)
            for arg in iterated.args
            if isinstance(arg, ast.Call)
            and isinstance(arg.func, ast.Attribute)
            and arg.func.attr in ("parameters", "buffers", "values")
        ]
        if not owners or not any(_updates_in_place(node) for node in ast.walk(loop)):
            return
        for owner in owners:
            if owner is not None:
                self._event("average", owner, loop)

    def _module_loop(self, loop: ast.For | ast.AsyncFor) -> None:
        """`for m in model.modules(): if isinstance(m, BatchNorm2d): m.eval()` puts the
        BN layers of `model` into eval (a BN freeze)."""
        iterated = loop.iter
        if not (isinstance(iterated, ast.Call) and isinstance(iterated.func, ast.Attribute)):
            return
        if iterated.func.attr not in ("modules", "named_modules", "children", "named_children"):
            return
        owner = key_of(iterated.func.value)
        if owner is not None and _freezes_batchnorm_parameters(loop.body):
            # `for m in net.modules(): if isinstance(m, nn.BatchNorm2d):
            # m.weight.requires_grad = False`: BN affine parameters frozen, statistics not.
            self._event("freeze", owner, loop, bn_params=True)
        for node in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
            if (
                owner is not None
                and isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and (
                    node.func.attr == "eval"
                    or (node.func.attr == "train" and node.args and _literal(node.args[0]) is False)
                )
            ):
                self._event("bn_eval", owner, loop)
                return

    # -- expressions ------------------------------------------------------------------
    def _expressions(self, node: ast.expr, store: bool = False) -> None:
        """Events of every call inside `node`, inner calls first (evaluation order).
        Names, constants, attributes and calls, most of the nodes, are taken apart
        here rather than through `ast.iter_child_nodes`: the same children in the
        same order, without a generator per node."""
        kind = type(node)
        if kind is ast.Name or kind is ast.Constant or kind is ast.Lambda:
            return
        if kind is ast.Attribute:
            assert isinstance(node, ast.Attribute)
            self._expressions(node.value)
            return
        if kind is ast.Call:
            assert isinstance(node, ast.Call)
            self._expressions(node.func)
            for argument in node.args:
                self._expressions(argument)
            for keyword in node.keywords:
                self._expressions(keyword.value)
            self._call(node)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expressions(child)
            elif isinstance(child, ast.keyword | ast.comprehension):
                for inner in ast.iter_child_nodes(child):
                    if isinstance(inner, ast.expr):
                        self._expressions(inner)
        if isinstance(node, ast.Call):
            self._call(node)

    def _call(self, call: ast.Call) -> None:
        func = call.func
        self._draw(call)
        if isinstance(func, ast.Name):
            if func.id in _NOT_FORWARD:
                return
            if func.id in self.inner and func.id not in self.bindings:
                self._project_call(func.id, call)
                return
            callee = self.names.qualify(func)
            if callee is not None:
                self._project_call(callee, call)
            elif (
                func.id in self.params
                or func.id in self.bindings
                or func.id in self.closure
                or func.id in self.results  # `model, optimizer = build(args)`
            ):
                self._forward(func.id, call)
                if func.id not in self.bindings and func.id not in self.results:
                    self._opaque(None, call)  # a callable parameter: `train_fn(model)`
            elif func.id not in _BUILTINS:
                # A module-level object (`model(x)` in a helper) or a name from
                # `import *`: recorded with its name, even without key arguments.
                self._opaque(None, call, name=func.id)
            return
        if not isinstance(func, ast.Attribute):
            return
        receiver = key_of(func.value)
        method = func.attr
        if method in ("update", "setdefault", "pop", "clear") and isinstance(func.value, ast.Name):
            # `cfg.update(...)`: the dict is no longer the literal, nor the caller's.
            self.dicts.pop(func.value.id, None)
            self.written.add(func.value.id)
        if receiver is None and method in ("train", "eval"):
            # `net.to(device).train()`: the mode call acts on the moved model.
            receiver = _moved_key(func.value)
        if receiver is not None and self.names.qualify(func.value) is not None:
            # `torch.save(...)`, `utils.validate(...)`: a call of a library/project function.
            self._project_call(self.names.qualify(func) or "", call)
            return
        if method == "backward":
            self._event("backward", receiver, call, **self._guarded())
            for loop in self.loop_stack:
                loop["backward"] = True
            return
        if receiver is None:
            self._opaque(None, call)  # `get_trainer().fit(model)`
            return
        instance = self._instance_class(receiver)
        if instance is not None and not _is_mode_call(call):
            # `solver.train(loader, model)` on `solver = Solver(...)`: a method of a
            # (possibly project) class, not `nn.Module.train`.
            self._project_call(f"{instance}.{method}", call)
            if method in ("train", "eval"):
                return
        if method in _MODEL_USE_METHODS:
            self._event("use", receiver, call, method=method)
        if method in ("eval", "train") and not _is_mode_call(call) and receiver == "self":
            # `self.train(epoch, loader)` in a plain trainer class: its own method (a
            # module's `train` takes one `mode`), not a mode switch.
            self._project_call(f"self.{method}", call)
        elif method in ("eval", "train"):
            # `for m in [encoder, decoder]: m.eval()` switches each model of the list.
            for target in [receiver, *self.loop_members.get(receiver, [])]:
                self._mode_event(target, method, call)
        elif method == "requires_grad_":
            if call.args and _literal(call.args[0]) is False:
                self._event("freeze", receiver, call)
            elif not call.args or _literal(call.args[0]) is True:
                self._event("unfreeze", receiver, call)
        elif method == "apply" and call.args:
            name = (dotted_name_of(call.args[0]) or "").lower()
            # `apply(set_bn_eval)`, `apply(freeze_bn)`; not an initialiser such as
            # `apply(weights_init_normal)` or `apply(init_bn)`.
            if _APPLIED_FREEZE.search(name) and "init" not in name:
                self._event("bn_eval", receiver, call)
        elif method == "backward":
            self._event("backward", receiver, call, **self._guarded())
            for loop in self.loop_stack:
                loop["backward"] = True
        elif method == "add_argument":
            self._argparse(call)
        elif method in ("forward", "module"):
            self._forward(receiver, call)
        elif receiver == "self":
            # `self.validate(...)` (a method) or `self.model(x)` (a submodule): both
            # are recorded; the index knows which one the class defines.
            self._project_call(f"self.{method}", call)
            self._forward(f"self.{method}", call)
        elif method not in _MODEL_USE_METHODS:
            if _FREEZE_METHOD.search(method):
                # `net.module.freeze_bn()`: a model's own freeze API (BN005 resolves it
                # through the model's class).
                self._event("method", receiver, call, fn=method)
            self._opaque(receiver, call)

    def _instance_class(self, receiver: str) -> str | None:
        """The class a local name was last bound to an instance of (`solver = Solver()`),
        when it is not a library's."""
        bindings = self.bindings.get(receiver)
        spec = bindings[-1].get("spec") if bindings else None
        callee = spec.get("call") if spec else None
        if not isinstance(callee, str) or callee.split(".", 1)[0] in _LIBRARIES:
            return None
        return callee if callee.rsplit(".", 1)[-1].lstrip("~")[:1].isupper() else None

    def _mode_event(self, receiver: str | None, method: str, call: ast.Call) -> None:
        if method == "eval":
            self._event("eval", receiver, call)
        elif method == "train":
            mode = _literal(call.args[0]) if call.args else True
            if call.keywords and not call.args:
                mode = _literal(call.keywords[0].value)
            if mode is False:
                self._event("eval", receiver, call)
            elif mode is True:
                self._event("train", receiver, call)
            else:
                # `model.train(was_training)`: restores a mode nobody knows statically.
                self._event("setmode", receiver, call)

    def _opaque(self, receiver: str | None, call: ast.Call, name: str | None = None) -> None:
        """A call the index cannot follow (`evaluator.run(model)`, `ema.update(model)`,
        `model.set_train_mode()`), recorded with the keys it may act on: its key
        arguments, what its receiver was built from, and a receiver whose method is
        named for a mode."""
        touched = _argument_keys(call)
        if receiver is not None:
            touched.extend(self.holders.get(receiver, ()))
            method = call.func.attr.lower() if isinstance(call.func, ast.Attribute) else ""
            if "train" in method or "mode" in method:
                touched.append(receiver)
        if name is not None:
            self._event("opaque", None, call, args=list(dict.fromkeys(touched)), fn=name)
        elif receiver is not None and self._may_be_project_object(receiver, call):
            # `model.val_start()` on a project object: the index may find the method
            # (`receivers.py`); until then it is as opaque as any other call.
            assert isinstance(call.func, ast.Attribute)
            self._event(
                "opaque",
                None,
                call,
                args=list(dict.fromkeys(touched)),
                recv=receiver,
                method=call.func.attr,
                margs=[key_of(a) for a in call.args],
                mkw={k.arg: key_of(k.value) for k in call.keywords if k.arg},
                **_string_arguments(call),
            )
        elif touched:
            self._event("opaque", None, call, args=list(dict.fromkeys(touched)))

    def _may_be_project_object(self, receiver: str, call: ast.Call) -> bool:
        """A method call whose receiver is a parameter, a local binding or an attribute
        of `self`, and whose name is not one of the common container/logging methods."""
        method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        root = receiver.split(".")[0]
        local = root in self.params or root in self.bindings or root in self.closure
        return (local or receiver.startswith("self.")) and method not in _PLAIN_METHODS

    def _forward(self, key: str, call: ast.Call) -> None:
        first = call.args[0] if call.args else None
        # A dummy input (`torch.randn(...)`) is a shape check or a summary, not evaluation.
        dummy = first is not None and (
            _made_up_tensor(first) or (key_of(first) or "") in self.made_up
        )
        extra: Json = {"dummy": True} if dummy else {}
        if call is self.bare_call:
            extra["discarded"] = True
        # What the forward runs on (`model(val_images)`): names tell evaluation apart.
        source = _moved_key(first) if isinstance(first, ast.Call) else key_of(first)
        if source is not None:
            extra["input"] = source
        self._event("forward", key, call, **extra)
        for loop in self.loop_stack:
            loop["forwards"].append(key)

    def _project_call(self, callee: str, call: ast.Call) -> None:
        if callee.split(".", 1)[0] in _LIBRARIES:
            return
        args = [key_of(a) for a in call.args]
        kwargs = {k.arg: key_of(k.value) for k in call.keywords if k.arg}
        # Integer literals passed (`make_loader(ds, batch_size=1)`), by position or name,
        # for batch sizes read from a parameter.
        passed = [(str(i), a) for i, a in enumerate(call.args)]
        passed += [(k.arg, k.value) for k in call.keywords if k.arg]
        values = {
            name: value for name, node in passed if (value := self._passed_value(node)) is not None
        }
        extra: Json = {"values": values} if values else {}
        # Models passed together in a list (`set_mode("eval", [enc, dec])`).
        lists = {
            slot: keys
            for slot, value in [
                *((f"#{i}", a) for i, a in enumerate(call.args)),
                *((k.arg, k.value) for k in call.keywords if k.arg),
            ]
            if (keys := _members(value, []))
        }
        if lists:
            extra["lists"] = lists
        words = [
            a.value
            for a in [*call.args, *(k.value for k in call.keywords)]
            if isinstance(a, ast.Constant) and isinstance(a.value, str) and len(a.value) <= 12
        ]
        if lists and words:
            extra["words"] = words  # `set_mode("eval", [...])`: which branch runs
        self._event("call", None, call, fn=callee, args=args, kwargs=kwargs, **extra)
        for loop in self.loop_stack:
            loop["calls"].append(len(self.events) - 1)

    def _argparse(self, call: ast.Call) -> None:
        flags = [_literal(a) for a in call.args]
        dest = None
        default: Any = "?"
        for keyword in call.keywords:
            if keyword.arg == "dest":
                dest = _literal(keyword.value)
            elif keyword.arg == "default":
                default = _literal(keyword.value)
        if dest is None:
            longs = [f for f in flags if isinstance(f, str) and f.startswith("--")]
            names = longs or [f for f in flags if isinstance(f, str)]
            if names:
                dest = names[0].lstrip("-").replace("-", "_")
        if isinstance(dest, str):
            self.argparse[dest] = default
            self.argparse_at[dest] = self.positions.of(call)

    def _draw(self, call: ast.Call) -> None:
        """`next(it)`, `it.next()`, `next(iter(loader))` inside a loop draw one batch
        of the loader per step."""
        if not self.loop_stack:
            return
        func = call.func
        source: ast.expr | None = None
        if isinstance(func, ast.Name) and func.id == "next" and call.args:
            source = call.args[0]
        elif isinstance(func, ast.Attribute) and func.attr in ("next", "__next__"):
            source = func.value
        if source is None:
            return
        key = self._loader_key(source)
        if key is not None:
            for loop in self.loop_stack:
                loop.setdefault("draws", []).append(key)

    def _guarded(self) -> Json:
        """The phase tests around the current statement, when there are any."""
        guards = [guard for guard in self.guards if guard]
        return {"when": guards} if guards else {}

    def _event(self, kind: str, key: str | None, node: ast.AST, **extra: Any) -> None:
        event: Json = {"k": kind, "key": key, "pos": self.positions.of(node)}
        if self.nograd:
            event["nograd"] = True
        if self.loop_stack:
            event["loop"] = self.loops.index(self.loop_stack[-1])
            iterated = [loop["iter"] for loop in self.loop_stack if loop["iter"]]
            if iterated:
                event["iter"] = iterated
        event.update(extra)
        self.events.append(event)


def _phase_test(test: ast.expr, params: list[str]) -> Json | None:
    """`phase == "train"`, `mode in ("train", "finetune")` on a parameter:
    `{"param": "phase", "values": [...]}`; None for any other test."""
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.In)
        and isinstance(test.left, ast.Name)
        and test.left.id in params
    ):
        return None
    right = test.comparators[0]
    items = right.elts if isinstance(right, ast.Tuple | ast.List | ast.Set) else [right]
    if isinstance(test.ops[0], ast.Eq) and len(items) != 1:
        return None
    values = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    if len(values) != len(items) or not values:
        return None
    return {"param": test.left.id, "values": values}


def _string_arguments(call: ast.Call) -> Json:
    """String literals passed to a method (`step(x, "test")`): `{"mstr": {slot: s}}`."""
    found = {
        slot: value.value
        for slot, value in [
            *((f"#{i}", a) for i, a in enumerate(call.args)),
            *((k.arg, k.value) for k in call.keywords if k.arg),
        ]
        if isinstance(value, ast.Constant) and isinstance(value.value, str)
    }
    return {"mstr": found} if found else {}


def _members(node: ast.expr, params: list[str]) -> list[str]:
    """The models a literal list or tuple holds (`[enc, dec]`), or `p[*]` for the
    elements of a parameter `p`; [] for anything else."""
    if isinstance(node, ast.Name) and node.id in params:
        return [f"{node.id}[*]"]
    return _member_keys(node)


def _is_mode_call(call: ast.Call) -> bool:
    """A call that can be `nn.Module.train(mode)` / `.eval()` by its arguments."""
    method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if method == "eval":
        return not call.args and not call.keywords
    if method == "train":
        return len(call.args) <= 1 and all(k.arg == "mode" for k in call.keywords)
    return False


def _moved_key(node: ast.expr) -> str | None:
    """`net` for `net.to(device)`, `net.cuda().half()`; None for anything else."""
    while (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _SAME_MODEL_METHODS
    ):
        node = node.func.value
        if not isinstance(node, ast.Call):
            return key_of(node)
    return None


def _opens_parameters(body: list[ast.stmt]) -> bool:
    """A parameter loop body that sets `requires_grad` to True."""
    return any(
        isinstance(node, ast.Assign)
        and _literal(node.value) is True
        and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets)
        for node in ast.walk(ast.Module(body=body, type_ignores=[]))
    )


_IN_PLACE = frozenset({"mul_", "add_", "copy_", "lerp_", "sub_", "addcmul_"})


def _updates_in_place(node: ast.AST) -> bool:
    """`k.data.mul_(m)`, `k.copy_(q)`, `k.data = ...`: a parameter written in place."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in _IN_PLACE
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Attribute) and t.attr == "data" for t in node.targets)
    return False


def _sets_requires_grad_false(node: ast.AST) -> bool:
    """`p.requires_grad = False` or `p.requires_grad_(False)`."""
    if isinstance(node, ast.Assign):
        return _literal(node.value) is False and any(
            isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets
        )
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "requires_grad_"
        and bool(node.args)
        and _literal(node.args[0]) is False
    )


def _freezes_batchnorm_parameters(body: list[ast.stmt]) -> bool:
    """A module loop body that sets `requires_grad` to False under a BatchNorm test
    (`isinstance(m, nn.BatchNorm2d)`, `"bn" in name`) and never calls `.eval()`."""
    guarded = False
    freezes = False
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.If):
            text = ast.unparse(node.test)
            if "BatchNorm" in text or re.search(r"\bbn\b|['\"]bn|_BatchNorm", text):
                guarded = True
        elif _sets_requires_grad_false(node):
            freezes = True
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "eval"
        ):
            return False  # a BN freeze proper (`bn_eval`): statistics fixed too
    return guarded and freezes


def _argument_keys(call: ast.Call) -> list[str]:
    keys = [key_of(a) for a in call.args] + [key_of(k.value) for k in call.keywords]
    return [key for key in keys if key is not None]


def dotted_tail(node: ast.expr) -> str:
    return (
        node.attr
        if isinstance(node, ast.Attribute)
        else node.id
        if isinstance(node, ast.Name)
        else ""
    )


def dotted_name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return dotted_name_of(node.func)
    return None


# Calls that wrap data into a tensor (`torch.Tensor(np.ones(s))`) or move or cast one
# (`torch.randn(s).to(device)`): a made-up input stays made up through them.
_TENSOR_WRAPPERS = frozenset(
    {"Tensor", "tensor", "FloatTensor", "from_numpy", "as_tensor", "to", "cuda", "float"}
)


def _made_up_tensor(node: ast.expr) -> bool:
    """A tensor made up on the spot for a shape check or smoke test: `torch.randn(s)`,
    `torch.Tensor(np.ones(s))`, `torch.zeros(s).to(device)`."""
    while isinstance(node, ast.Call):
        name = dotted_tail(node.func)
        if name in _DUMMY_INPUTS:
            return True
        if name not in _TENSOR_WRAPPERS:
            return False
        if isinstance(node.func, ast.Attribute) and name in ("to", "cuda", "float"):
            node = node.func.value
        elif node.args:
            node = node.args[0]
        else:
            return False
    return False


def _member_keys(node: ast.expr) -> list[str]:
    """The keys of a list or tuple display of keys (`[encoder, decoder]`), else []."""
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return []
    keys = [key_of(element) for element in node.elts]
    return [key for key in keys if key is not None] if all(keys) else []


def _iterated_key(node: ast.expr) -> str | None:
    """The loader a `for` iterates: `train_loader` in `enumerate(tqdm(train_loader))`;
    `loaders[train]` for `loaders["train"]`, `loaders[]` for `loaders[phase]`."""
    while (
        isinstance(node, ast.Call) and node.args and dotted_tail(node.func) in _ITERATION_WRAPPERS
    ):
        node = node.args[0]
    if isinstance(node, ast.Subscript):
        base = key_of(node.value)
        if base is None:
            return None
        label = _literal(node.slice)
        known = isinstance(label, str | int) and label != "?"
        return f"{base}[{label if known else ''}]"
    return key_of(node)


def _same_loader(first: Json | None, second: Json) -> bool:
    """The same loader made again under the same name (a second training phase that
    rebuilds it): the first one is kept, where a finding about it is reported."""
    if first is None:
        return False
    return {k: v for k, v in first.items() if k != "pos"} == {
        k: v for k, v in second.items() if k != "pos"
    }


def _is_loader_call(call: ast.Call, names: Names) -> bool:
    """`DataLoader(...)` or a call of a class named like a DataLoader subclass
    (`MultiEpochsDataLoader`, `FastDataLoader`)."""
    callee = names.qualify(call.func) or ""
    name = callee.rsplit(".", 1)[-1] if callee else dotted_tail(call.func)
    return name.endswith("DataLoader")


def _is_torch_loader(call: ast.Call, names: Names) -> bool:
    callee = names.qualify(call.func)
    if callee is None:
        return dotted_tail(call.func) == "DataLoader"
    return callee.startswith("torch.") and callee.endswith(".DataLoader")


def _dict_literal(node: ast.Dict) -> dict[str, Any] | None:
    """A dict literal with string keys: its literal values, nested dicts, "?" for the
    rest; None when a key is not a string (`**other` included)."""
    entries: dict[str, Any] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        label = _literal(key) if key is not None else None
        if not isinstance(label, str):
            return None
        entries[label] = _dict_literal(value) if isinstance(value, ast.Dict) else _literal(value)
        if entries[label] is None and isinstance(value, ast.Dict):
            entries[label] = "?"
    return entries


def _is_nograd(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return dotted_tail(target) in _NO_GRAD


def _default(node: ast.expr, names: Names) -> Any:
    value = _literal(node)
    if value != "?":
        return value
    ref = names.qualify(node)
    return {"ref": ref} if ref else "?"


def _literal(node: ast.AST | None) -> Any:
    from bnlint.index.summary import literal

    return literal(node)
