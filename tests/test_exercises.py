"""Every registered exercise: its reference passes, placeholders get "not done yet"."""

import re

import pytest
import torch

from dlcourse.exercises import (
    EXERCISES,
    NotDoneError,
    WrongAnswerError,
    check,
    check_close,
    check_equal,
)


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_reference_solution_passes(exercise_id):
    assert repr(check(exercise_id, EXERCISES[exercise_id].solution())).startswith("✔")


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_placeholder_is_not_done(exercise_id):
    with pytest.raises(NotDoneError, match="not done yet"):
        check(exercise_id, ...)


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_starter_function_is_not_done(exercise_id):
    def starter(*args, **kwargs):
        raise NotImplementedError

    reference = EXERCISES[exercise_id].solution()
    if not callable(reference):
        pytest.skip("the answer is a value, not a function")
    with pytest.raises(NotDoneError):
        check(exercise_id, starter)


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_crashing_function_is_a_wrong_answer(exercise_id):
    def crashes(*args, **kwargs):
        raise ZeroDivisionError("boom")

    if not callable(EXERCISES[exercise_id].solution()):
        pytest.skip("the answer is a value, not a function")
    with pytest.raises(WrongAnswerError, match="ZeroDivisionError"):
        check(exercise_id, crashes)


def test_unknown_exercise_lists_known_ones():
    with pytest.raises(KeyError, match="ex-start-budget"):
        check("ex-does-not-exist", 1)


def test_exercise_labels_follow_the_convention():
    for exercise_id, ex in EXERCISES.items():
        assert exercise_id.startswith("ex-"), exercise_id
        assert ex.chapter.count("/") == 1, ex.chapter


def test_check_close_messages():
    check_close(0.30000001, 0.3)
    with pytest.raises(AssertionError, match="0.3"):
        check_close(0.31, 0.3)
    with pytest.raises(WrongAnswerError, match="wrong shape.*transposed"):
        check_close([[1.0, 2.0, 3.0]], [[1.0], [2.0], [3.0]])
    with pytest.raises(WrongAnswerError, match="NaN"):
        check_close([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(WrongAnswerError, match="constant factor of about 2"):
        check_close([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    with pytest.raises(WrongAnswerError, match="sign is flipped"):
        check_close([-1.0, -2.0], [1.0, 2.0])
    with pytest.raises(WrongAnswerError, match="matches when transposed"):
        check_close([[1.0, 2.0], [3.0, 4.0]], [[1.0, 3.0], [2.0, 4.0]])
    with pytest.raises(WrongAnswerError, match="should be a number"):
        check_close(object(), 1.0)


def test_check_close_can_hide_the_expected_value():
    with pytest.raises(WrongAnswerError) as info:
        check_close(1.5, 1.2345678, reveal=False)
    assert "1.23" not in str(info.value)


def test_check_equal_messages():
    check_equal({"a": 1}, {"a": 1})
    with pytest.raises(WrongAnswerError, match="missing keys \\['b'\\]"):
        check_equal({"a": 1}, {"a": 1, "b": 2})
    with pytest.raises(WrongAnswerError, match="positions \\[1\\]"):
        check_equal((1, 5, 3), (1, 2, 3))
    with pytest.raises(WrongAnswerError, match="expected 3 items"):
        check_equal((1, 2), (1, 2, 3))


def test_require_tensor_names_the_result():
    from dlcourse.exercises import require_tensor

    x = torch.ones(2, requires_grad=True)
    assert not require_tensor(x * 2, "y").requires_grad
    with pytest.raises(WrongAnswerError, match="y should be a torch tensor, got list"):
        require_tensor([1.0], "y")


def test_check_close_can_require_a_dtype():
    from dlcourse.exercises import check_close

    check_close(torch.ones(2), torch.ones(2), dtype=torch.float32)
    with pytest.raises(WrongAnswerError, match="wrong dtype: expected torch.float32, got torch"):
        check_close(torch.ones(2, dtype=torch.float64), torch.ones(2), dtype=torch.float32)


def test_over_cases_says_which_case_fails_after_which_passed():
    from dlcourse.exercises import over_cases

    def must_be_positive(x):
        if x <= 0:
            raise WrongAnswerError(f"{x} is not positive")

    assert over_cases([("one", 1), ("two", 2)], must_be_positive) == "2 cases"
    with pytest.raises(WrongAnswerError, match=r"^case 1 \(zero\): 0 is not positive$"):
        over_cases([("zero", 0), ("one", 1)], must_be_positive)
    with pytest.raises(
        WrongAnswerError, match=r"case 2 \(empty batch\); it matches on the first case \(typical\)"
    ):
        over_cases([("typical", 1), ("empty batch", 0)], must_be_positive)


# ---------------------------------------------------------------------------------------------
# Targeted wrong answers: each message names the case, says what passed before it, and teaches
# (wrong shape, wrong dtype, NaN) without printing the reference.


def _wrong(exercise_id, answer, *patterns):
    """Check ``answer``, expect a ``WrongAnswerError`` matching every regex; return its text."""
    with pytest.raises(WrongAnswerError) as info:
        check(exercise_id, answer)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    return message


def _reference(exercise_id):
    return EXERCISES[exercise_id].solution()


def test_linear_vjp_messages():
    ref = _reference("ex-backprop-linear-vjp")

    def no_empty_batch(x, W, grad_out):
        grad_x, grad_W, _ = ref(x, W, grad_out)
        return grad_x, grad_W, torch.stack(list(grad_out)).sum(dim=0)  # fails for B = 0

    _wrong("ex-backprop-linear-vjp", no_empty_batch,
           r"^case 4 \(an empty batch \(B = 0\)\); it matches on the first 3 cases",
           "your function raised RuntimeError")  # fmt: skip
    _wrong("ex-backprop-linear-vjp", lambda *a: tuple(t.double() for t in ref(*a)),
           r"case 5 \(float32 inputs\); it matches on the first 4 cases",
           "grad_x has the wrong dtype: expected torch.float32, got torch.float64")  # fmt: skip
    _wrong("ex-backprop-linear-vjp", lambda *a: (ref(*a)[0], ref(*a)[1].T, ref(*a)[2]),
           r"^case 1 \(", r"grad_W has the wrong shape: expected \(5, 3\), got \(3, 5\) "
           r"\(transposed\?\)")  # fmt: skip
    _wrong("ex-backprop-linear-vjp", lambda *a: (ref(*a)[0], ref(*a)[1], ref(*a)[2] * torch.nan),
           "grad_b contains 5 NaN or infinite value")  # fmt: skip


def test_two_layer_needs_a_stable_softmax_and_float32():
    ref = _reference("ex-backprop-two-layer")

    def naive_softmax(X, Y, W1, b1, W2, b2):
        Z1 = X @ W1.T + b1
        A1 = torch.relu(Z1)
        Z2 = A1 @ W2.T + b2
        P = Z2.exp() / Z2.exp().sum(dim=1, keepdim=True)  # overflows for logits around 1e3
        loss = -(Y * torch.log_softmax(Z2, dim=1)).sum(dim=1).mean()
        G2 = (P - Y) / len(X)
        G1 = (G2 @ W2) * (Z1 > 0)
        return loss, {"W1": G1.T @ X, "b1": G1.sum(0), "W2": G2.T @ A1, "b2": G2.sum(0)}

    _wrong("ex-backprop-two-layer", naive_softmax,
           r"case 5 \(large logits \(around 1e3\)\); it matches on the first 4 cases", "NaN")  # fmt: skip

    def float64_grads(*inputs):
        loss, grads = ref(*inputs)
        return loss, {k: v.double() for k, v in grads.items()}

    _wrong("ex-backprop-two-layer", float64_grads, r"case 6 \(float32 inputs\)",
           r"grads\['W1'\] has the wrong dtype: expected torch.float32")  # fmt: skip


def test_im2col_messages():
    ref = _reference("ex-conv-im2col")

    def squeezes_single_pixels(*args, **kwargs):
        y = ref(*args, **kwargs)
        return y.flatten(2) if y.shape[-2:] == (1, 1) else y

    _wrong("ex-conv-im2col", squeezes_single_pixels,
           r"case 6 \(an output of a single pixel\); it matches on the first 5 cases",
           r"wrong shape: expected \(3, 4, 1, 1\), got \(3, 4, 1\)")  # fmt: skip
    _wrong("ex-conv-im2col", lambda *a, **k: ref(*a, **k).double(), r"^case 1 ",
           "wrong dtype: expected torch.float32, got torch.float64")  # fmt: skip


def test_multihead_messages():
    import math

    from torch import nn

    split, merge, cls = _reference("ex-attention-multihead")

    class NaiveSoftmax(cls):
        def forward(self, x):
            q, k, v = (split(p(x), self.n_heads) for p in (self.q_proj, self.k_proj, self.v_proj))
            scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).exp()
            return self.out_proj(merge(scores / scores.sum(-1, keepdim=True) @ v))

    _wrong("ex-attention-multihead", (split, merge, NaiveSoftmax),
           r"case 6 \(large inputs \(scores around 1e3\)\); it matches on the first 5 cases",
           "NaN")  # fmt: skip

    def view_split(x, n_heads):
        return x.view(x.shape[0], x.shape[1], n_heads, -1).transpose(1, 2)  # -1 fails for B = 0

    _wrong("ex-attention-multihead", (view_split, merge, cls),
           r"case 5 \(an empty batch \(B = 0\)\); it matches on the first 4 cases")  # fmt: skip
    assert issubclass(cls, nn.Module)


def test_diffusion_messages():
    from dlcourse.diffusion import ddpm_schedule

    def stacked_q_sample(x0, t, noise, schedule):
        abar = torch.stack([schedule["alpha_bar"][i] for i in t]).view(-1, *[1] * (x0.ndim - 1))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    _wrong("ex-diffusion-q-sample", stacked_q_sample,
           r"case 4 \(an empty batch \(B = 0\)\); it matches on the first 3 cases")  # fmt: skip
    _wrong("ex-diffusion-q-sample", lambda *a: stacked_q_sample(*a).double(), r"^case 1 ",
           "x_t has the wrong dtype: expected torch.float32, got torch.float64")  # fmt: skip

    def divides_by_T_minus_1(T, kind="linear"):
        betas = 1e-4 + (0.02 - 1e-4) * torch.arange(T, dtype=torch.float64) / (T - 1)
        reference = ddpm_schedule(T, kind=kind, dtype=torch.float64)["alpha_bar"]
        if kind == "cosine":
            return reference
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])

    _wrong("ex-diffusion-schedule", divides_by_T_minus_1,
           r"case 5 \(linear with a single step \(T = 1\)\); it matches on the first 4 cases",
           "NaN")  # fmt: skip

    ref = _reference("ex-diffusion-v-param")
    _wrong("ex-diffusion-v-param", lambda *a: tuple(t.float() for t in ref(*a)),
           r"case 7 \(float64 inputs\); it matches on the first 6 cases", "wrong dtype")  # fmt: skip
    _wrong("ex-diffusion-v-param", lambda *a: (ref(*a)[0][..., :1], ref(*a)[1]),
           r"x0 has the wrong shape: expected \(32, 2\), got \(32, 1\)")  # fmt: skip


def test_policy_gradient_messages():
    def naive_bandit(logits, rewards):
        p = logits.exp() / logits.exp().sum()
        return p * (rewards - (p * rewards).sum())

    _wrong("ex-pg-bandit-gradient", naive_bandit,
           r"case 7 \(large logits \(around 1e3\)\); it matches on the first 6 cases",
           "NaN or infinite values: exp\\(1000\\) overflows")  # fmt: skip
    _wrong("ex-pg-bandit-gradient", lambda lg, r: naive_bandit(lg, r).double(),
           r"^case 1 ", "wrong dtype")  # fmt: skip

    def naive_terms(logits, b):
        p = logits.exp() / logits.exp().sum()
        return p[:, None] * b * (torch.eye(len(logits)) - p)

    _wrong("ex-pg-baseline-zero", naive_terms,
           r"case 6 \(large logits \(around 1e3\)\); it matches on the first 5 cases", "NaN")  # fmt: skip
    _wrong("ex-pg-baseline-zero", lambda logits, b: naive_terms(logits, b)[0],
           r"wrong shape: expected \(2, 2\)")  # fmt: skip


def test_reproduce_messages():
    _wrong("ex-start-reproduce", lambda s: torch.randn(5, dtype=torch.float64,
           generator=torch.Generator().manual_seed(s)), "wrong dtype")  # fmt: skip
    _wrong("ex-start-reproduce", lambda s: torch.randn(1, 5,
           generator=torch.Generator().manual_seed(s)), r"wrong shape: expected \(5,\)")  # fmt: skip

    def seeds_numpy(seed):
        import numpy as np

        np.random.seed(seed)
        return torch.from_numpy(np.random.randn(5)).float()

    _wrong("ex-start-reproduce", seeds_numpy,
           r"case 3 \(a seed above 2\*\*32\); it matches on the first 2 cases")  # fmt: skip


def test_start_format_wants_the_first_code_cell():
    assert repr(check("ex-start-format", ["remove-cell"])).startswith("✔")
    _wrong("ex-start-format", [], "jupytext.reads")
    _wrong("ex-start-format", ["remove-cell", "exercise-starter"], "tags")


def _numbers_in(message):
    return {round(float(s), 4) for s in re.findall(r"-?\d+\.\d+", message)}


@pytest.mark.parametrize("exercise_id", ["ex-backprop-linear-vjp", "ex-diffusion-q-sample"])
def test_messages_do_not_reveal_the_reference(exercise_id):
    """A wrong answer (the reference plus 0.5) is told so without the reference's numbers."""
    ref, expected = _reference(exercise_id), []

    def off_by_half(*args):
        out = ref(*args)
        first = out[0] if isinstance(out, tuple) else out
        expected.append(first.detach().double())
        rest = out[1:] if isinstance(out, tuple) else ()
        return (first + 0.5, *rest) if isinstance(out, tuple) else first + 0.5

    message = _wrong(exercise_id, off_by_half, "values differ|the two sides differ by")
    assert "expected [" not in message
    revealed = {round(v, 4) for v in expected[0].flatten().tolist()} & _numbers_in(message)
    assert not revealed, f"{message!r} shows reference values {revealed}"


def test_hidden_reference_is_not_given_away_by_the_size_of_the_error():
    with pytest.raises(WrongAnswerError) as info:
        check_close([0.0, 0.0, 0.0], [-0.3348, 0.2447, 0.09], atol=1e-4, reveal=False)
    message = str(info.value)
    assert "index (0,)" in message and "0.33" not in message and "0.335" not in message


def test_a_failed_check_shows_one_line_in_jupyter_not_a_traceback():
    with pytest.raises(NotDoneError) as info:
        check("ex-start-budget", ...)
    (line,) = info.value._render_traceback_()
    assert "NotDoneError" in line and "not done yet" in line


def test_call_answer_gives_the_student_copies_of_the_inputs():
    from dlcourse.exercises import call_answer

    x, inputs = torch.ones(3), {"t": [torch.zeros(2)]}
    call_answer(lambda a, b: (a.mul_(5), b["t"][0].add_(1)), x, inputs)
    assert torch.equal(x, torch.ones(3)) and torch.equal(inputs["t"][0], torch.zeros(2))


def test_a_placeholder_anywhere_in_the_answer_is_not_done():
    with pytest.raises(NotDoneError):
        check("ex-conv-output-size", ([28, ..., 14, 32, 26, 54], 227))
    with pytest.raises(NotDoneError):
        check("ex-conv-params", {"conv_3_16": 448, "dense_equivalent": ..., "conv_64_64": 1,
                                 "depthwise_64": 1})  # fmt: skip
