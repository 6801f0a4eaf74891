from tests.conftest import lint

HEAD = (
    "import torch\nimport torchvision\nfrom torch.optim.swa_utils import AveragedModel\n"
    "model = torchvision.models.resnet18()\n"
)


def _lines(source: str) -> list[int]:
    return [f.start.line for f in lint(source, ["BN018"])]


def test_averaged_model_put_in_eval_is_reported_at_the_averagedmodel_call() -> None:
    assert _lines(HEAD + "swa = AveragedModel(model)\nswa.eval()\n") == [5]


def test_update_bn_anywhere_in_the_file_silences() -> None:
    source = (
        HEAD + "swa = AveragedModel(model)\nswa.eval()\n"
        "def finish(loader):\n    torch.optim.swa_utils.update_bn(loader, swa)\n"
    )
    assert _lines(source) == []


def test_use_buffers_given_a_variable_is_not_judged() -> None:
    assert _lines(HEAD + "swa = AveragedModel(model, use_buffers=flag)\nswa.eval()\n") == []


def test_positional_use_buffers_true_is_silent() -> None:
    source = HEAD + "swa = AveragedModel(model, None, None, None, True)\nswa.eval()\n"
    assert _lines(source) == []


def test_use_buffers_false_literal_is_reported() -> None:
    assert _lines(HEAD + "swa = AveragedModel(model, use_buffers=False)\nswa(x)\n") == [5]


def test_averaged_model_switched_to_train_may_be_reestimated_by_hand() -> None:
    source = (
        HEAD + "swa = AveragedModel(model)\nswa.train()\nwith torch.no_grad():\n"
        "    for x in loader:\n        swa(x)\nswa.eval()\n"
    )
    assert _lines(source) == []


def test_averaged_model_handed_to_an_imported_helper_is_silent() -> None:
    source = (
        "from tools import finish_swa\n" + HEAD + "swa = AveragedModel(model)\n"
        "finish_swa(swa, loader)\nswa.eval()\n"
    )
    assert _lines(source) == []


def test_a_helper_defined_in_the_file_does_not_silence() -> None:
    source = (
        HEAD + "def describe(m):\n    print(m)\n"
        "swa = AveragedModel(model)\ndescribe(swa)\nswa.eval()\n"
    )
    assert _lines(source) == [7]


def test_use_before_the_binding_in_the_same_scope_does_not_count() -> None:
    source = HEAD + "swa = None\nswa.eval()\nswa = AveragedModel(model)\n"
    assert _lines(source) == []


def test_a_function_that_rebinds_the_name_uses_another_object() -> None:
    source = (
        HEAD + "swa = AveragedModel(model)\ndef check(other):\n    swa = other\n    swa.eval()\n"
    )
    assert _lines(source) == []


def test_a_function_reading_the_module_level_name_evaluates_it() -> None:
    source = HEAD + "swa = AveragedModel(model)\ndef check():\n    return swa.module(x)\n"
    assert _lines(source) == [5]


def test_evaluation_function_receiving_the_module_counts() -> None:
    source = HEAD + "swa = AveragedModel(model)\nacc = validate(val_loader, swa.module)\n"
    (finding,) = lint(source, ["BN018"])
    assert "`validate()` on line 6" in finding.message
    assert "update_bn(train_loader, swa)" in finding.suggestion


def test_ema_average_is_named_in_the_message() -> None:
    source = (
        "import torch\n" + HEAD[13:] + "from torch.optim.swa_utils import get_ema_multi_avg_fn\n"
        "ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))\n"
        "torch.save(ema.state_dict(), 'ema.pt')\n"
    )
    (finding,) = lint(source, ["BN018"])
    assert "EMA model" in finding.message


def test_unknown_model_is_silent() -> None:
    source = (
        "from torch.optim.swa_utils import AveragedModel\nimport timm\n"
        "model = timm.create_model(args.arch)\nswa = AveragedModel(model)\nswa.eval()\n"
    )
    assert _lines(source) == []


def test_other_class_named_averagedmodel_is_not_torchs() -> None:
    source = (
        "import torchvision\nfrom swad import AveragedModel\n"
        "model = torchvision.models.resnet18()\nswa = AveragedModel(model)\nswa.eval()\n"
    )
    assert _lines(source) == []
