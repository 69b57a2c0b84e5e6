"""Every registered exercise: its reference passes, placeholders get "not done yet"."""

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
