"""BN037: summary and FLOP utilities that run a training-mode forward of a BN model."""

from __future__ import annotations

import textwrap

from tests.conftest import lint

HEADER = """\
import torch
import torch.nn.functional as F
import torchvision
from fvcore.nn import FlopCountAnalysis
from thop import profile
from torch.utils.flop_counter import FlopCounterMode
from torchinfo import summary as info_summary
from torchsummary import summary


"""


def lines(body: str) -> list[int]:
    offset = HEADER.count("\n")
    found = lint(HEADER + textwrap.dedent(body), ["BN037"])
    assert all(f.code == "BN037" for f in found)
    return [f.start.line - offset for f in found]


def test_torchsummary_on_a_fresh_bn_model_is_reported_and_eval_silences_it() -> None:
    body = """\
        def main():
            model = torchvision.models.resnet18()
            summary(model, (3, 224, 224))
        """
    assert lines(body) == [3]
    switched = body.replace("    summary(", "    model.eval(); summary(")
    assert lines(switched) == []


def test_utilities_that_switch_to_eval_themselves_are_silent() -> None:
    body = """\
        def main():
            model = torchvision.models.resnet18()
            profile(model, inputs=(torch.randn(1, 3, 224, 224),))
            info_summary(model, input_size=(1, 3, 224, 224))
        """
    assert lines(body) == []


def test_flop_counter_block_without_backward_is_reported() -> None:
    body = """\
        def main():
            model = torchvision.models.resnet18()
            with FlopCounterMode(display=False):
                model(torch.randn(1, 3, 224, 224))
        """
    assert lines(body) == [4]


def test_flop_counter_block_of_a_training_step_is_silent() -> None:
    body = """\
        def main(labels):
            model = torchvision.models.resnet18()
            with FlopCounterMode(display=False):
                F.cross_entropy(model(torch.randn(8, 3, 224, 224)), labels).backward()
        """
    assert lines(body) == []


def test_a_named_flop_counter_is_followed() -> None:
    body = """\
        def main():
            model = torchvision.models.resnet18()
            counter = FlopCounterMode(display=False)
            with counter:
                model(torch.randn(1, 3, 224, 224))
        """
    assert lines(body) == [5]


def test_fvcore_on_a_model_without_batchnorm_is_silent() -> None:
    body = """\
        def main():
            bn_model = torchvision.models.mobilenet_v2()
            vit = torchvision.models.vit_b_16()
            FlopCountAnalysis(vit, torch.randn(1, 3, 224, 224)).total()
            FlopCountAnalysis(bn_model, torch.randn(1, 3, 224, 224)).total()
        """
    assert lines(body) == [5]
