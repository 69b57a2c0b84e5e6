"""Tests for chapter 2.8: residual blocks, residual MLPs, gradient clipping, exercise checks."""

import math

import pytest
import torch
from torch import nn

from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError
from dlcourse.nn import ResidualBlock, ResidualMLP
from dlcourse.optim import clip_grad_norm_


def _grads(seed: int, scale: float) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in [(5, 3), (3,), (2, 4, 2)]:
        p = torch.zeros(shape, requires_grad=True)
        p.grad = torch.randn(shape, generator=generator) * scale
        params.append(p)
    return params


@pytest.mark.parametrize(("scale", "max_norm", "norm_type"),
                         [(10.0, 1.0, 2.0), (1e-3, 1.0, 2.0), (5.0, 0.5, math.inf), (3.0, 2.0, 1.0)])  # fmt: skip
def test_clip_grad_norm_matches_torch(scale, max_norm, norm_type):
    ours, theirs = _grads(0, scale), _grads(0, scale)
    got = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    torch.testing.assert_close(got, expected)
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_clip_grad_norm_keeps_direction_and_skips_missing_grads():
    params = _grads(1, 100.0) + [torch.zeros(3, requires_grad=True)]
    before = torch.cat([p.grad.flatten() for p in params[:3]])
    total = clip_grad_norm_(params, 1.0)
    after = torch.cat([p.grad.flatten() for p in params[:3]])
    assert total > 1.0 and params[3].grad is None
    torch.testing.assert_close(after.norm(), torch.tensor(1.0), rtol=1e-5, atol=0)
    torch.testing.assert_close(after, before / before.norm(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_rejects_negative_max_norm():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(_grads(0, 1.0), -1.0)


def test_zero_init_preact_block_is_identity_and_postact_is_relu():
    x = torch.randn(6, 8)
    pre = ResidualBlock(8, zero_init=True)
    post = ResidualBlock(8, preact=False, zero_init=True)
    torch.testing.assert_close(pre(x), x, rtol=0, atol=0)
    torch.testing.assert_close(post(x), torch.relu(x), rtol=0, atol=0)


@pytest.mark.parametrize("norm", [None, "layer", "batch"])
def test_residual_block_jacobian_is_identity_plus_branch(norm):
    torch.manual_seed(0)
    block = ResidualBlock(5, act=nn.Tanh, norm=norm).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(block, x).reshape(5, 5)
    jac_f = torch.autograd.functional.jacobian(block.branch, x).reshape(5, 5)
    torch.testing.assert_close(jac, jac_f + torch.eye(5, dtype=torch.float64))


def test_residual_mlp_plain_matches_residual_without_skips():
    torch.manual_seed(0)
    res = ResidualMLP(4, 6, 3, 2)
    torch.manual_seed(0)
    plain = ResidualMLP(4, 6, 3, 2, residual=False)
    x = torch.randn(5, 4)
    h = plain.inp(x)
    for block in plain.blocks:
        h = block.branch(h)
    torch.testing.assert_close(plain(x), plain.out(h))
    h = res.inp(x)
    for block in res.blocks:
        h = h + block.branch(h)
    torch.testing.assert_close(res(x), res.out(h))
    assert res(x).shape == (5, 2) and len(res.blocks) == 3


def test_residual_modules_reject_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        ResidualBlock(0)
    with pytest.raises(ValueError, match="norm"):
        ResidualBlock(4, norm="group")
    with pytest.raises(TypeError, match="act"):
        ResidualBlock(4, act=torch.relu)
    with pytest.raises(ValueError, match="depth"):
        ResidualMLP(4, 8, -1, 2)
    with pytest.raises(ValueError, match="x must be"):
        ResidualMLP(4, 8, 2, 2)(torch.randn(3, 5))


def test_orthogonal_check_rejects_unnormalised_random_matrices():
    def wrong(a, L, d=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        p = torch.eye(d, dtype=torch.float64)
        for _ in range(L):
            p = a * torch.randn(d, d, generator=g, dtype=torch.float64) @ p
        return p

    with pytest.raises(WrongAnswerError):
        check("ex-stability-orthogonal", wrong)


def test_scalar_chain_check_rejects_upside_down_factor():
    def wrong(w, b, x0):
        z, grad = torch.tensor(float(x0), dtype=torch.float64), None
        zs = [z]
        for wi, bi in zip(w, b, strict=True):
            zs.append(torch.sigmoid(wi * zs[-1] + bi))
        grad = zs[0] * zs[1] * (1 - zs[1])
        for i in range(1, 5):
            s = zs[i + 1] * (1 - zs[i + 1])
            grad = grad / (s * w[i])  # the chain factor written upside down
        return grad

    with pytest.raises(WrongAnswerError):
        check("ex-stability-scalar-chain", wrong)


def test_break_plus_one_check_rejects_small_weights():
    with pytest.raises(WrongAnswerError, match="not above"):
        check("ex-stability-break-plus-one", 0.1 * torch.eye(4).repeat(10, 1, 1))
    with pytest.raises(WrongAnswerError, match="shape"):
        check("ex-stability-break-plus-one", torch.eye(4))


def test_clip_check_rejects_per_tensor_clipping():
    def per_tensor(params, max_norm):
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in params))
        for p in params:
            p.grad.mul_(min(1.0, max_norm / p.grad.norm().item()))
        return total

    with pytest.raises(WrongAnswerError):
        check("ex-stability-clip", per_tensor)
