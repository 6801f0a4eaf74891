from pathlib import Path

from tests.conftest import FIXTURES, lint

FOLDER = FIXTURES / "BN039-per-sample-gradients-with-batchnorm"

TORCH_FUNC = (
    "import torchvision\nfrom torch.func import functional_call, grad, vmap\n"
    "model = torchvision.models.resnet18()\n"
    "def f(p, b, x):\n    return functional_call(model, (p, b), (x,)).sum()\n"
)


def _lines(source: str) -> list[int]:
    return [f.start.line for f in lint(source, ["BN039"])]


def _fixture(name: str) -> str:
    return Path(FOLDER / name).read_text(encoding="utf-8")


def test_functional_call_under_vmap_of_grad_is_reported() -> None:
    assert _lines(TORCH_FUNC + "g = vmap(grad(f), in_dims=(None, None, 0))\n") == [5]


def test_functional_call_without_vmap_is_not_per_sample() -> None:
    assert _lines(TORCH_FUNC + "g = grad(f)\n") == []


def test_vmap_without_a_gradient_transform_is_not_per_sample_gradients() -> None:
    assert _lines(TORCH_FUNC + "g = vmap(f, in_dims=(None, None, 0))\n") == []


def test_model_evaluated_through_an_assignment_is_silent() -> None:
    source = TORCH_FUNC.replace("resnet18()", "resnet18().eval()")
    assert _lines(source + "g = vmap(grad(f), in_dims=(None, None, 0))\n") == []


def test_batchnorm_without_running_stats_is_silent() -> None:
    source = (
        "import torch.nn as nn\nfrom torch.func import functional_call, grad, vmap\n"
        "model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False))\n"
        "def f(p, b, x):\n    return functional_call(model, (p, b), (x,)).sum()\n"
        "g = vmap(grad(f))\n"
    )
    assert _lines(source) == []


def test_grad_sample_module_outside_opacus_is_not_judged() -> None:
    source = (
        "import torchvision\nfrom mylib import GradSampleModule\n"
        "net = GradSampleModule(torchvision.models.resnet18())\n"
    )
    assert _lines(source) == []


def test_old_opacus_privacy_engine_with_the_model_is_reported() -> None:
    source = (
        "import torchvision\nfrom opacus import PrivacyEngine\n"
        "model = torchvision.models.resnet18()\n"
        "engine = PrivacyEngine(model, batch_size=64, sample_size=50000, noise_multiplier=1.0, "
        "max_grad_norm=1.0)\n"
    )
    assert _lines(source) == [4]


def test_opacus_fix_call_silences_the_fixture() -> None:
    text = _fixture("good_opacus_module_validator.py")
    assert _lines(text) == []
    unfixed = text.replace("        model = ModuleValidator.fix(model)\n", "        pass\n")
    assert _lines(unfixed.replace("ModuleValidator", "Checker")) == [15]


def test_eval_mode_is_what_keeps_the_influence_fixture_silent() -> None:
    text = _fixture("good_eval_mode_influence.py")
    assert _lines(text.replace("    model.eval()\n", "")) == [14]


def test_groupnorm_is_what_keeps_the_dp_fixture_silent() -> None:
    text = _fixture("good_groupnorm_dp.py")
    assert _lines(text.replace("nn.GroupNorm(4, 32)", "nn.BatchNorm2d(32)")) == [21]


def test_message_names_the_model_and_the_fix() -> None:
    (finding,) = lint(_fixture("bad_opacus_make_private.py"), ["BN039"])
    assert "`model` holds BatchNorm" in finding.message
    assert "ModuleValidator.fix(model)" in finding.suggestion
