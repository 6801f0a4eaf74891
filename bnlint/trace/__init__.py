"""The runtime tracer: watch a real PyTorch run and report BatchNorm misuse.

    with bnlint.trace() as t:          # every module
        train(model, loader)
    print(t.findings)

    @bnlint.trace(model)               # one model, around each call
    def evaluate(model, loader): ...

`import bnlint.trace` does not import torch; `trace()` does (this package is the only
place in bnlint that imports torch).

DataParallel: without GPUs it calls the wrapped module itself and every check runs.
With GPUs its replicas are new module objects at each forward, called from worker
threads: per-forward checks run on each replica, but a replica is named by its class
only and costs a stack walk at every forward (untested here: no GPUs), and the
first-forward probe of BN001/BN019 sees the parent model only. DistributedDataParallel
runs the real module in each process: one tracer per rank, one merged report
(`torchrun --nproc-per-node N -m bnlint run train.py`, see `bnlint.trace.ranks`).
`torch.compile`d code: checks run at the eager boundary only, not inside the
compiled region.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnlint.rule import Rule
    from bnlint.trace.tracer import Tracer

__all__ = ["trace"]


def trace(
    model: Any = None,
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    rules: Iterable[type[Rule]] | None = None,
    sample_every: int | None = 50,
    options: Mapping[str, Any] | None = None,
    timeline: bool = False,
) -> Tracer:
    """A tracer for `model` (an `nn.Module`), or for every module when None.

    Use it as a context manager, as a decorator, or with `start()`/`stop()`; read
    `findings` afterwards. `select`/`ignore` take rule selectors as on the command line
    (default: every default-enabled rule with a runtime check); `rules` gives rule
    classes directly. `sample_every`: the checks that read tensor values (BN020's
    running-variance health; in eval, BN017's initial-buffer check, once per module, and
    BN021's input shift at a model's first BatchNorm) run on each module's first forward
    and then every `sample_every`-th, the interval doubling (up to 8 times) while the
    reads find the same thing and starting again after `train()`/`eval()` switches the
    module or a state dict is loaded; None turns them off. `options`: the `[tool.bnlint]` settings
    by name (`small-batch-threshold`, `transductive-batchnorm`, ...), as
    `bnlint.config.load_settings(...).options` gives them. `timeline`: also record
    each BatchNorm's mode, batch size and running-statistics drift along the run
    (`tracer.timeline_report()`, drawn by `bnlint run --html`).
    """
    from bnlint.trace.tracer import Tracer

    return Tracer(
        model,
        select=select,
        ignore=ignore,
        rules=rules,
        sample_every=sample_every,
        options=options,
        timeline=timeline,
    )


class _CallableModule(types.ModuleType):
    """`bnlint.trace(...)` calls `bnlint.trace.trace(...)`: the package shadows the
    function of the same name as soon as it is imported, so the package forwards."""

    def __call__(self, *args: Any, **kwargs: Any) -> Tracer:
        return trace(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
