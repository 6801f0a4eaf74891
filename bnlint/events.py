"""What the runtime tracer saw, as plain data: the events rules' runtime checks read.

The tracer (`bnlint.trace`, the only place that imports torch) turns PyTorch activity
into these events; a rule's `check_runtime` reads their fields and decides. Nothing
here holds a tensor, a module or a frame: only names, flags, shapes and source sites,
so a rule never needs torch and an event can be printed or compared in a test.

Per-forward events carry metadata only (flags, shapes, dtypes); events built from
tensor values (`RunningStatsSample`, `InputShiftSample`) come from a sampled subset of
forwards.

Delivery contract for `BatchNormCall` (what keeps the tracer cheap): the tracer hands a
module's call to the rules only when it differs from that module's previous call; an
identical repeat (same flags, shapes, dtypes, producer, mode sites, world size) is not
rebuilt, and the findings the previous call produced are counted again. A rule's
handling of a `BatchNormCall` must therefore depend on the event alone, or update its
`memory` idempotently per module (BN006: "this module last ran in eval").

What a single call can show (the `training` flag, grad and inference mode, the input's
shape and dtype, the producer, anything `train()`/`eval()` or `backward()` changes) is
compared on every call. Three facts that only persistent findings read and that change
only by an assignment the tracer cannot see (`affine_frozen`, `track_running_stats`,
`buffer_dtype`) are read again after an interval that doubles while the calls repeat,
up to `MAX_FULL_INTERVAL` (32) calls: a change in them reaches the rules up to that
many calls late, and the previous call's findings are counted meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Site:
    """A line of user code: where a module was built, called, or switched mode."""

    path: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class BatchNormModule:
    """One BatchNorm module as the tracer knows it (built once per module)."""

    path: str  # qualified name in its model (`layer3.1.bn2`), else the class name
    class_name: str
    num_features: int
    momentum: float | None
    affine: bool
    construction: Site | None  # None when the module was built before tracing began
    # The first BatchNorm of its model (in `named_modules()` order): where BN021 looks.
    first_in_model: bool = False
    # Inside a `torch.optim.swa_utils.AveragedModel` built without `use_buffers=True`.
    in_averaged_model: bool = False


@dataclass(slots=True)
class BatchNormCall:
    """A BatchNorm module is about to run forward (seen before torch computes it).

    Read-only by convention: not frozen because a frozen dataclass of this size costs
    microseconds to build, and one is built for every BatchNorm forward."""

    module: BatchNormModule
    training: bool
    track_running_stats: bool
    grad_enabled: bool
    inference_mode: bool
    # The module has affine parameters and none of them requires grad.
    affine_frozen: bool
    input_shape: tuple[int, ...] | None
    input_dtype: str | None
    buffer_dtype: str | None  # dtype of running_var, None without running stats
    # A statistics re-estimation routine (`swa_utils.update_bn`, `update_bn_stats` ...)
    # is on the stack; only computed when training with grad disabled.
    stats_reestimation: bool
    # The module called last before this one that has no children (the producer of
    # the input in a plain pipeline); None when unknown.
    previous_module: str | None
    # Where the last outermost `train()`/`eval()` reaching this module was called.
    mode_site: Site | None
    # Set when this module was put in eval by an explicit call on itself or on a
    # sub-module, and a later `train()` on an ancestor put it back in training: the
    # site of that explicit `eval()`.
    frozen_eval_site: Site | None
    # Output features of `previous_module` when it is a feature producer for the last
    # dimension (Linear, Embedding, RNN/LSTM/GRU, LayerNorm, MultiheadAttention).
    previous_features: int | None = None
    # torch.distributed's world size when a process group is initialised, else 1
    # (refreshed when tracing starts and at every `backward()`).
    world_size: int = 1
    # Eval forward of a module in an AveragedModel without `use_buffers` whose running
    # statistics are still those `update_parameters` copied from the source model: no
    # `update_bn` or load since (read from `_version` counters, no data).
    averaged_stats_stale: bool = False

    @property
    def updates_running_stats(self) -> bool:
        return self.training and self.track_running_stats

    @property
    def features_last(self) -> bool:
        """A batch-first sequence `(N, L, C)` from a producer that writes its features
        last, with `L != C`: BatchNorm1d would normalise positions (BN015)."""
        shape = self.input_shape
        if shape is None or len(shape) != 3 or self.previous_features is None:
            return False
        channels = self.module.num_features or shape[-1]  # lazy modules: not yet known
        return shape[-1] == channels == self.previous_features and shape[1] != channels

    @property
    def values_per_channel(self) -> int | None:
        """N * spatial positions: how many values BN averages per channel."""
        if self.input_shape is None or len(self.input_shape) < 2:
            return None
        count = self.input_shape[0]
        for size in self.input_shape[2:]:
            count *= size
        return count


@dataclass(frozen=True, slots=True)
class RunningStatsUpdated:
    """A training forward of `call.module` changed its running statistics (its
    `num_batches_tracked` version counter moved). Confirmed after the forward: it is
    emitted at the module's next call or when tracing stops."""

    call: BatchNormCall


@dataclass(frozen=True, slots=True)
class RunningStatsSample:
    """Values of a module's running statistics, read on a sampled subset of forwards
    because reading values syncs devices: the first, then every `sample_every`-th, the
    interval doubling (up to 8 times) while each read finds what the previous one found,
    back to `sample_every` when the module switches between training and eval or a
    state dict is loaded."""

    call: BatchNormCall
    variance_finite: bool
    variance_positive: bool
    # Read on eval-mode samples only (None in training): running_mean all 0, running_var
    # all 1 and num_batches_tracked 0, and the affine parameters moved from 1/0.
    at_initial_values: bool | None = None
    affine_trained: bool | None = None


@dataclass(frozen=True, slots=True)
class InputShiftSample:
    """How far an eval-mode input of the first BatchNorm of a model lies from its
    running statistics: the median over channels of |batch mean - running mean| /
    sqrt(running var + eps). Sampled like `RunningStatsSample` (it reads values)."""

    call: BatchNormCall
    median_z: float


@dataclass(frozen=True, slots=True)
class BatchNormReuse:
    """One BatchNorm module ran more than once within one forward of its model, fed by
    different producer modules (seen on the model's first traced forward)."""

    module: BatchNormModule
    calls: int
    producers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrainingLoaderEpoch:
    """A `DataLoader` iteration that was in progress when `backward()` ran (a training
    loader), reported once per iteration. `last_batch` is the size of its last batch on
    this rank (None when the length is unknown)."""

    batch_size: int
    drop_last: bool
    samples: int  # per rank: len(sampler)
    last_batch: int | None
    site: Site | None  # the line that started iterating it


@dataclass(frozen=True, slots=True)
class StateDictLoaded:
    """`load_state_dict` returned (strict=False): the BatchNorm buffer keys it reported
    missing."""

    module_class: str
    missing_running_keys: tuple[str, ...]
    site: Site | None


@dataclass(frozen=True, slots=True)
class Backward:
    """`tensor.backward()` / `torch.autograd.backward()` is about to run. Rules that
    care what ran before it remember `BatchNormCall`s in their memory."""


@dataclass(frozen=True, slots=True)
class ExportCall:
    """A module is handed to a function that freezes its mode into an artifact
    (`torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace`, `torch.save`,
    `torch.onnx.export`)."""

    function: str
    module_class: str
    training_batchnorms: tuple[str, ...]  # qualified names of BNs in training mode
    # onnx.export's `training` argument as text ("EVAL", "TRAINING", "PRESERVE"), if given.
    onnx_training: str | None = None


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """A top-level model call returned; `batchnorm_output` names the BN whose output
    is the returned tensor (directly or through one element-wise activation module)."""

    model_class: str
    batchnorm_output: BatchNormModule | None
    through_activation: str | None


Event = (
    BatchNormCall
    | RunningStatsUpdated
    | RunningStatsSample
    | InputShiftSample
    | BatchNormReuse
    | TrainingLoaderEpoch
    | StateDictLoaded
    | Backward
    | ExportCall
    | ModelOutput
)
