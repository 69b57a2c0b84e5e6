"""Tests for chapter 1.6: initialization schemes, activation statistics, module helpers,
registries, configs and hooks."""

import copy
import io
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlcourse.exercises import WrongAnswerError, check  # noqa: E402
from dlcourse.nn import INIT_SCHEMES, activation_stats, init_module  # noqa: E402
from dlcourse.plot import plot_layer_stats  # noqa: E402
from dlcourse.train import (  # noqa: E402
    HOOK_EVENTS,
    Hook,
    Registry,
    build_from_cfg,
    call_hooks,
    count_params_meta,
    layer_grad_norms,
    merge_cfg,
)

# ---------------------------------------------------------------------------------------------
# init_module


@pytest.mark.parametrize(
    "scheme, kw, torch_init",
    [
        ("normal", {"std": 0.02}, lambda w, g: nn.init.normal_(w, std=0.02, generator=g)),
        ("xavier_uniform", {}, lambda w, g: nn.init.xavier_uniform_(w, generator=g)),
        ("xavier_normal", {"gain": 2.0}, lambda w, g: nn.init.xavier_normal_(w, 2.0, g)),
        (
            "kaiming_normal",
            {"mode": "fan_out"},
            lambda w, g: nn.init.kaiming_normal_(
                w, mode="fan_out", nonlinearity="relu", generator=g
            ),
        ),
        (
            "kaiming_uniform",
            {},
            lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g),
        ),
        ("orthogonal", {}, lambda w, g: nn.init.orthogonal_(w, generator=g)),
    ],
)
def test_init_module_matches_torch_nn_init(scheme, kw, torch_init):
    layer = nn.Linear(30, 20)
    init_module(layer, scheme, generator=torch.Generator().manual_seed(3), **kw)
    expected = torch.empty(20, 30)
    with torch.no_grad():
        torch_init(expected, torch.Generator().manual_seed(3))
    torch.testing.assert_close(layer.weight.detach(), expected)
    assert torch.equal(layer.bias.detach(), torch.zeros(20))


def test_init_module_reaches_nested_linear_and_conv_layers_only():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    )
    init_module(model, "constant", value=0.5, bias=0.25)
    assert torch.all(model[0].weight == 0.5) and torch.all(model[2][1].weight == 0.5)
    assert torch.all(model[0].bias == 0.25) and torch.all(model[2][1].bias == 0.25)
    assert torch.equal(model[1].weight.detach(), torch.ones(4))  # BatchNorm untouched


def test_init_module_variances_follow_the_formulas():
    fan_in, fan_out = 400, 300
    expected = {
        "kaiming_normal": math.sqrt(2 / fan_in),
        "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
        "lecun_normal": math.sqrt(1 / fan_in),
        "kaiming_uniform": math.sqrt(2 / fan_in),
    }
    for scheme, std in expected.items():
        layer = nn.Linear(fan_in, fan_out)
        init_module(layer, scheme, generator=torch.Generator().manual_seed(0))
        assert abs(layer.weight.std().item() / std - 1) < 0.02, scheme


def test_lecun_normal_uses_the_conv_fan_in():
    conv = nn.Conv2d(8, 16, 3)
    init_module(conv, "lecun_normal", generator=torch.Generator().manual_seed(0))
    assert abs(conv.weight.std().item() * math.sqrt(8 * 9) - 1) < 0.05


def test_init_module_accepts_a_generator_on_another_device():
    with torch.device("meta"):
        layer = nn.Linear(4, 4)
    init_module(layer, "normal", generator=torch.Generator().manual_seed(0))  # CPU draw
    assert layer.weight.is_meta


def test_init_module_does_not_record_autograd_history():
    layer = nn.Linear(4, 4)
    init_module(layer, "xavier_uniform")
    assert layer.weight.is_leaf and layer.weight.grad_fn is None


def test_init_module_rejects_bad_arguments():
    layer = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="scheme"):
        init_module(layer, "he")
    with pytest.raises(TypeError, match="does not take"):
        init_module(layer, "xavier_uniform", std=0.1)
    with pytest.raises(ValueError, match="value"):
        init_module(layer, "constant")
    with pytest.raises(TypeError, match="m must be"):
        init_module(torch.zeros(2), "zeros")
    assert set(INIT_SCHEMES) >= {"normal", "kaiming_normal", "orthogonal", "zeros"}


# ---------------------------------------------------------------------------------------------
# activation_stats


def test_activation_stats_separates_the_three_schemes():
    small = activation_stats(10, 128, "normal", n=256)
    xavier = activation_stats(10, 128, "xavier_normal", n=256)
    kaiming = activation_stats(10, 128, "kaiming_normal", n=256)
    assert len(small) == len(xavier) == len(kaiming) == 10
    assert small[-1] < 1e-8 < xavier[-1] < 0.1 < kaiming[-1] < 3.0
    # one ReLU layer with Xavier (square) halves the second moment
    assert 0.3 < xavier[-1] / xavier[-3] < 0.7


def test_activation_stats_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    first = activation_stats(3, 32, "kaiming_normal", n=64, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert first == activation_stats(3, 32, "kaiming_normal", n=64, seed=1)
    assert first != activation_stats(3, 32, "kaiming_normal", n=64, seed=2)


def test_activation_stats_passes_init_kwargs_and_activation():
    identity = activation_stats(1, 64, "constant", act=lambda h: h, n=32, value=0.0)
    assert identity == [0.0]
    with pytest.raises(ValueError, match="depth"):
        activation_stats(0, 8, "normal")
    with pytest.raises(TypeError, match="act"):
        activation_stats(2, 8, "normal", act="relu")


# ---------------------------------------------------------------------------------------------
# count_params_meta and layer_grad_norms


def test_count_params_meta_matches_a_real_count_and_allocates_nothing():
    def builder():
        return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))

    assert count_params_meta(builder) == sum(p.numel() for p in builder().parameters()) == 7946
    big = count_params_meta(lambda: nn.Sequential(*[nn.Linear(8192, 8192) for _ in range(4)]))
    assert big == 268_468_224


def test_count_params_meta_counts_shared_parameters_once():
    def tied():
        layer = nn.Linear(5, 5)
        return nn.Sequential(layer, nn.ReLU(), layer)

    assert count_params_meta(tied) == 30


def test_count_params_meta_rejects_non_builders():
    with pytest.raises(TypeError, match="builder"):
        count_params_meta(42)


def test_count_params_meta_rejects_a_builder_returning_no_module():
    with pytest.raises(TypeError, match="builder must return"):
        count_params_meta(lambda: torch.zeros(3))


def test_layer_grad_norms_match_the_norms_of_the_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model(torch.randn(8, 4)).sum().backward()
    norms = layer_grad_norms(model)
    assert list(norms) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, p in model.named_parameters():
        assert norms[name] == pytest.approx(p.grad.norm().item(), rel=1e-6)
    with pytest.raises(ValueError, match="backward"):
        layer_grad_norms(nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# Hooks, registries and configs


def test_call_hooks_calls_every_hook_in_order():
    calls = []

    class Named(Hook):
        def __init__(self, name):
            self.name = name

        def after_iter(self, state):
            calls.append((self.name, state["step"]))

    hooks = [Named("a"), Named("b"), Hook()]
    for event in HOOK_EVENTS:
        call_hooks(hooks, event, {"step": 3})
    assert calls == [("a", 3), ("b", 3)]
    with pytest.raises(ValueError, match="event"):
        call_hooks(hooks, "after_step", {})


def test_a_loop_with_hooks_follows_the_documented_order():
    events = []

    class Record(Hook):
        pass

    for event in HOOK_EVENTS:
        setattr(Record, event, lambda self, state, e=event: events.append(e))
    hooks = [Record()]
    call_hooks(hooks, "before_run", {})
    for _ in range(2):
        call_hooks(hooks, "before_epoch", {})
        for _ in range(3):
            call_hooks(hooks, "before_iter", {})
            call_hooks(hooks, "after_iter", {})
        call_hooks(hooks, "after_epoch", {})
    call_hooks(hooks, "after_run", {})
    pattern = r"before_run( before_epoch( before_iter after_iter)+ after_epoch)+ after_run"
    assert re.fullmatch(pattern, " ".join(events))


def test_registry_registers_gets_and_refuses_duplicates():
    models = Registry("models")

    @models.register()
    class Tiny(nn.Module):
        pass

    models.register("linear")(nn.Linear)
    assert models.get("Tiny") is Tiny and "linear" in models and len(models) == 2
    with pytest.raises(KeyError, match="already registered"):
        models.register("linear")(nn.Conv1d)
    models.register("linear", force=True)(nn.Conv1d)
    assert models.get("linear") is nn.Conv1d
    with pytest.raises(KeyError, match="known"):
        models.get("mlp")
    with pytest.raises(TypeError, match="parentheses"):
        models.register(Tiny)
    with pytest.raises(ValueError, match="name"):
        Registry("")


def test_build_from_cfg_uses_the_registry_and_defaults_without_changing_cfg():
    layers = Registry("layers")
    layers.register("Linear")(nn.Linear)
    cfg = {"type": "Linear", "in_features": 3, "out_features": 2}
    saved = copy.deepcopy(cfg)
    layer = build_from_cfg(cfg, layers, bias=False)
    assert isinstance(layer, nn.Linear) and layer.bias is None and layer.weight.shape == (2, 3)
    assert cfg == saved
    assert isinstance(build_from_cfg({**cfg, "type": nn.Linear}, layers), nn.Linear)
    with pytest.raises(ValueError, match="type"):
        build_from_cfg({"in_features": 3}, layers)
    with pytest.raises(TypeError, match="registry"):
        build_from_cfg(cfg, {"Linear": nn.Linear})
    with pytest.raises(KeyError, match="Conv"):
        build_from_cfg({"type": "Conv"}, layers)


def test_merge_cfg_merges_recursively_and_honours_delete():
    base = {"model": {"type": "MLP", "hidden": [64], "act": "relu"}, "opt": {"lr": 0.1, "m": 0.9}}
    override = {"model": {"hidden": [32, 32]}, "opt": {"_delete_": True, "lr": 1e-3}, "seed": 1}
    saved = copy.deepcopy((base, override))
    merged = merge_cfg(base, override)
    assert merged == {
        "model": {"type": "MLP", "hidden": [32, 32], "act": "relu"},
        "opt": {"lr": 1e-3},
        "seed": 1,
    }
    assert (base, override) == saved


def test_merge_cfg_resolves_base_chains_and_lists():
    root = {"a": 1, "sub": {"x": 1, "y": 2}}
    child = {"_base_": root, "sub": {"y": 3}}
    other = {"b": 2}
    grandchild = {"_base_": [child, other], "sub": {"z": 4}}
    assert merge_cfg({}, grandchild) == {"a": 1, "b": 2, "sub": {"x": 1, "y": 3, "z": 4}}
    nested = {"model": {"_base_": {"depth": 2, "width": 8}, "width": 16}}
    assert merge_cfg(nested, {}) == {"model": {"depth": 2, "width": 16}}
    with pytest.raises(TypeError, match="_base_"):
        merge_cfg({"_base_": "base.py"}, {})
    with pytest.raises(TypeError, match="override"):
        merge_cfg({}, [("a", 1)])


# ---------------------------------------------------------------------------------------------
# plot_layer_stats


def test_plot_layer_stats_draws_one_line_per_model_on_a_log_axis():
    ax = plot_layer_stats({"a": [1.0, 0.1, 0.01], "b": [1.0, 1.0, 1.0]}, ylabel="std")
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="stats"):
        plot_layer_stats({})


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers get teaching messages


def test_symmetry_check_explains_rank_zero_and_full_rank():
    with pytest.raises(WrongAnswerError, match="zero"):
        check("ex-init-symmetry", 0)
    with pytest.raises(WrongAnswerError, match="rows differ"):
        check("ex-init-symmetry", 32)
    with pytest.raises(WrongAnswerError, match="int"):
        check("ex-init-symmetry", "1")
    assert repr(check("ex-init-symmetry", torch.tensor(1))).startswith("✔")


def test_numbers_check_recognises_common_slips():
    right = (math.sqrt(2 / 256), 0.2, 0.1)
    with pytest.raises(WrongAnswerError, match="LeCun"):
        check("ex-init-numbers", (1 / 16, 0.2, 0.1))
    with pytest.raises(WrongAnswerError, match="Xavier std"):
        check("ex-init-numbers", (right[0], math.sqrt(2 / 150), 0.1))
    with pytest.raises(WrongAnswerError, match="a = sqrt\\(5\\)"):
        check("ex-init-numbers", (right[0], 0.2, math.sqrt(6 / 100)))
    with pytest.raises(WrongAnswerError, match="three numbers"):
        check("ex-init-numbers", (0.1, 0.2))
    check("ex-init-numbers", (0.0884, 0.2, 0.1))  # rounded to four decimals is fine


def test_model_api_check_catches_missing_biases_and_transposed_shape():
    with pytest.raises(WrongAnswerError, match="biases"):
        check("ex-init-model-api", (7680, (256, 20)))
    with pytest.raises(WrongAnswerError, match="transposed"):
        check("ex-init-model-api", (7946, (20, 256)))
    assert repr(check("ex-init-model-api", (7946, torch.Size([256, 20])))).startswith("✔")


def test_save_check_catches_a_constant_answer_and_a_missing_load():
    def always_true(model, fresh, x):
        return True

    def compares_without_loading(model, fresh, x):
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        return torch.equal(model(x), model(x))

    with pytest.raises(WrongAnswerError, match="load_state_dict"):
        check("ex-init-save", (always_true, "TypeError"))
    with pytest.raises(WrongAnswerError, match="load_state_dict"):
        check("ex-init-save", (compares_without_loading, "TypeError"))
    reference = __import__("dlcourse.exercises.initialization", fromlist=["x"])
    good = reference._roundtrip_reference
    with pytest.raises(WrongAnswerError, match="error_name"):
        check("ex-init-save", (good, "PicklingError"))
    assert repr(check("ex-init-save", (good, TypeError))).startswith("✔")
