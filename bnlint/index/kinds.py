"""What a fully qualified callee is: a BatchNorm, a frozen BatchNorm, a producer with a
bias (Conv/Linear), an activation, a container, a known model factory.

Everything here is a table over dotted names; the names come out of `summary.py`
already resolved through the file's imports.
"""

from __future__ import annotations

import re

BN_CLASS_NAMES = frozenset(
    {
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "SyncBatchNorm",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "_BatchNorm",
        "_NormBase",
    }
)
# timm's `_BatchNorm` subclasses that fuse an activation.
_TIMM_BN_NAMES = frozenset({"BatchNormAct2d", "SyncBatchNormAct"})
_FROZEN_NAMES = frozenset(
    {"FrozenBatchNorm2d", "FrozenBatchNormAct2d", "FrozenBatchNorm", "FrozenBN"}
)
# Normalisations that do not cancel a per-channel bias and are never "BN".
_OTHER_NORMS = frozenset(
    {"GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm"}
)
_PRODUCERS = {
    "Linear": 1,
    "Conv1d": 1,
    "Conv2d": 2,
    "Conv3d": 3,
    "ConvTranspose1d": 1,
    "ConvTranspose2d": 2,
    "ConvTranspose3d": 3,
    "LazyLinear": 1,
    "LazyConv1d": 1,
    "LazyConv2d": 2,
    "LazyConv3d": 3,
}
# Where `bias` sits among the positional parameters of each producer.
_BIAS_POSITION = {"Linear": 2, "LazyLinear": 1, "Conv": 7, "ConvTranspose": 8, "LazyConv": 6}
_ACTIVATIONS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "LogSoftmax",
        "Hardswish",
        "Hardsigmoid",
        "Hardtanh",
        "Softplus",
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "mish",
        "sigmoid",
        "tanh",
        "softmax",
        "log_softmax",
        "hardswish",
        "softplus",
    }
)
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
# Dropouts that zero units and rescale the rest, changing the variance seen downstream
# between train and eval (P15). AlphaDropout keeps mean and variance by design.
_DROPOUTS = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d"})

# torchvision.models factories whose networks train BatchNorm.
_TORCHVISION_BN = re.compile(
    r"(resnet|resnext|wide_resnet|vgg\d+_bn|densenet|inception_v3|googlenet|mobilenet|"
    r"efficientnet|regnet|shufflenet|mnasnet|deeplabv3|fcn_|lraspp|r3d_|r2plus1d|mc3_|s3d|"
    r"raft|quantizable)"
)
# Detection models built with `FrozenBatchNorm2d` backbones by default.
_TORCHVISION_FROZEN = re.compile(r"(fasterrcnn|maskrcnn|keypointrcnn|retinanet|fcos|ssd|ssdlite)")
_TORCHVISION_NO_BN = re.compile(r"(^vit_|^swin|^convnext|^maxvit|^alexnet|^vgg\d+$|^squeezenet)")
# timm.create_model architecture names: BN families, and LayerNorm/attention families.
_TIMM_BN = re.compile(
    r"^(resnet|resnext|wide_resnet|seresnet|seresnext|skresnet|resnest|resnetrs|resnetv2_\d+d?$|"
    r"ecaresnet|gluon_res|efficientnet|tf_efficientnet|mobilenet|tf_mobilenet|mnasnet|"
    r"fbnet|mixnet|tf_mixnet|regnet|densenet|dla|dpn|hrnet|inception|xception|rexnet|ghostnet|"
    r"cspresnet|cspdarknet|darknet|repvgg|vgg\d+_bn|spnasnet|lcnet|tinynet|hardcorenas|"
    r"selecsls|tresnet|nasnet|pnasnet|legacy_se)"
)
_TIMM_NO_BN = re.compile(
    r"^(vit|deit|beit|swin|convnext|cait|xcit|eva|coat|twins|pit|levit_|mvit|crossvit|"
    r"poolformer|mixer|resmlp|gmlp|volo|edgenext|nfnet|nf_|dm_nfnet|efficientformerv2|"
    r"convit|tnt|sequencer|davit|maxvit|flexivit|samvit|hiera)"
)


def _last(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def _is_library(qualified: str, *prefixes: str) -> bool:
    return any(qualified == p or qualified.startswith(p + ".") for p in prefixes)


def library_norm_kind(qualified: str | None) -> str | None:
    """ "bn", "frozen", "other-norm" for library classes, None when not a norm we know."""
    if not qualified:
        return None
    last = _last(qualified)
    if last in _FROZEN_NAMES and _is_library(
        qualified, "torchvision", "detectron2", "timm", "mmcv"
    ):
        return "frozen"
    if _is_library(qualified, "torch") and last in BN_CLASS_NAMES:
        return "bn"
    if _is_library(qualified, "timm") and last in _TIMM_BN_NAMES:
        return "bn"
    if _is_library(qualified, "apex") and last in BN_CLASS_NAMES:
        return "bn"  # apex.parallel.SyncBatchNorm
    if _is_library(qualified, "torch", "timm") and last in _OTHER_NORMS:
        return "other-norm"
    return None


def producer_dims(qualified: str | None) -> int | None:
    """Spatial dimensionality of a torch Conv*/Linear (1 for Linear), else None."""
    if qualified and _is_library(qualified, "torch") and _last(qualified) in _PRODUCERS:
        return _PRODUCERS[_last(qualified)]
    return None


def bn_dims(qualified: str | None) -> int | None:
    """2 for BatchNorm2d ...; None for classes whose dimensionality is not in the name."""
    if not qualified:
        return None
    match = re.search(r"(\d)d$", _last(qualified))
    return int(match.group(1)) if match else None


def bias_position(qualified: str) -> int:
    last = _last(qualified)
    if last.startswith("ConvTranspose"):
        return _BIAS_POSITION["ConvTranspose"]
    if last.startswith("LazyConv"):
        return _BIAS_POSITION["LazyConv"]
    if last.startswith("Conv"):
        return _BIAS_POSITION["Conv"]
    return _BIAS_POSITION.get(last, 2)


# Activations of hidden layers: a block ending conv -> BN -> ReLU makes features, not
# predictions (an output activation such as Sigmoid or Tanh marks the prediction).
_HIDDEN_ACTIVATIONS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Hardswish",
    }
)


def is_hidden_activation(qualified: str | None) -> bool:
    return is_activation(qualified) and _last(qualified or "") in _HIDDEN_ACTIVATIONS


def is_activation(qualified: str | None) -> bool:
    if not qualified:
        return False
    return _is_library(qualified, "torch") and _last(qualified) in _ACTIVATIONS


def is_dropout(qualified: str | None) -> bool:
    """A torch `nn.Dropout`/`Dropout1d/2d/3d` class (not `AlphaDropout`)."""
    return (
        bool(qualified)
        and _is_library(qualified or "", "torch")
        and (_last(qualified or "") in _DROPOUTS)
    )


def is_container(qualified: str | None) -> bool:
    return (
        bool(qualified)
        and _is_library(qualified or "", "torch")
        and _last(qualified or "") in CONTAINERS
    )


def factory_kind(qualified: str | None, first_argument: object = None) -> str | None:
    """ "bn" / "frozen" / "none" for a known model factory call, None when unknown.

    `timm.create_model` is known only with a literal architecture name.
    """
    if not qualified:
        return None
    last = _last(qualified)
    if _is_library(qualified, "torchvision.models"):
        if _TORCHVISION_FROZEN.search(last):
            return "frozen"
        if _TORCHVISION_NO_BN.search(last):
            return "none"
        if _TORCHVISION_BN.match(last) or _TORCHVISION_BN.search(qualified):
            return "bn" if last[:1].islower() else None
        return None
    if qualified in ("timm.create_model", "timm.models.create_model") and isinstance(
        first_argument, str
    ):
        name = first_argument.split(".")[0]
        if _TIMM_NO_BN.match(name):
            return "none"
        if _TIMM_BN.match(name):
            return "bn"
    return None


# segmentation_models_pytorch (imported as `smp`, also vendored under that name):
# architectures whose decoder builds BatchNorm unless told otherwise, and those whose
# BN comes from the encoder only. Encoders default to "resnet34".
_SMP_PACKAGES = ("segmentation_models_pytorch", "smp")
_SMP_BN_DECODERS = frozenset(
    {"Unet", "UnetPlusPlus", "MAnet", "Linknet", "PSPNet", "PAN", "DeepLabV3", "DeepLabV3Plus"}
    | {"UPerNet"}
)
_SMP_ENCODER_ONLY = frozenset({"FPN", "Segformer", "DPT"})
_SMP_DECODER_SWITCHES = ("decoder_use_batchnorm", "psp_use_batchnorm")
_SMP_BN_ENCODERS = re.compile(
    r"^(resnet|resnext|res2net|timm-res|timm-regnet|timm-efficientnet|timm-mobilenet|"
    r"timm-skresnet|timm-gernet|se_resne|senet|densenet|dpn|efficientnet|mobilenet|"
    r"mobileone|inceptionv4|inceptionresnetv2|xception|vgg\d+_bn)"
)


def segmentation_family_kind(qualified: str | None, keywords: dict[str, object]) -> str | None:
    """ "bn" for a segmentation_models_pytorch model or encoder known to train BN
    (`smp.Unet("resnet34")`, `smp.encoders.get_encoder("efficientnet-b0")`), else None.

    `keywords` holds the call's literal arguments (`#0` for the first positional one,
    "?" for a value that is not a literal)."""
    if not qualified or not _is_library(qualified, *_SMP_PACKAGES):
        return None
    last = _last(qualified)
    if last == "get_encoder":
        name = keywords.get("name", keywords.get("#0"))
        return "bn" if isinstance(name, str) and _smp_bn_encoder(name) else None
    if last not in _SMP_BN_DECODERS and last not in _SMP_ENCODER_ONLY:
        return None
    decoder_bn = last in _SMP_BN_DECODERS and not any(
        keywords.get(switch) is False for switch in _SMP_DECODER_SWITCHES
    )
    if decoder_bn:
        return "bn"
    encoder = keywords.get("encoder_name", keywords.get("#0", "resnet34"))
    return "bn" if isinstance(encoder, str) and _smp_bn_encoder(encoder) else None


def _smp_bn_encoder(name: str) -> bool:
    if name.startswith("tu-"):
        return bool(_TIMM_BN.match(name[3:]))
    return bool(_SMP_BN_ENCODERS.match(name))
