"""Exercise checks for chapter 0.1, How to use this course."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_dtype, check_equal, exercise, over_cases

CHAPTER = "00-start/01-how-to-use"


def _seeded_draw(seed: int) -> torch.Tensor:
    from dlcourse.train import seed_everything

    seed_everything(seed)
    return torch.randn(5)


def _first_cell_tags() -> list[str]:
    """The tags of the first code cell of the small notebook text given in the starter cell."""
    return ["remove-cell"]


# seed 0 is falsy and 12_345_678_901 does not fit in 32 bits (np.random.seed would refuse it)
_SEEDS = [("seed 7", 7), ("seed 0", 0), ("a seed above 2**32", 12_345_678_901)]


@exercise("ex-start-reproduce", CHAPTER, solution=lambda: _seeded_draw)
def _reproduce(draw: Any) -> str:
    """``draw(seed)`` must return the same tensor for the same seed, another for another seed."""

    def check_one(seed: int) -> None:
        first, second, other = (call_answer(draw, s) for s in (seed, seed, seed + 1))
        if not all(torch.is_tensor(t) for t in (first, second, other)):
            raise WrongAnswerError("draw(seed) should return a tensor")
        if first.shape != (5,):
            raise WrongAnswerError(
                f"draw(seed) has the wrong shape: expected (5,), got {tuple(first.shape)}"
            )
        check_dtype(first, torch.float32, "draw(seed)")
        if not torch.equal(first, second):
            raise WrongAnswerError(
                f"two calls with seed {seed} gave different tensors: seed inside the function, "
                "before drawing (dlcourse.train.seed_everything)"
            )
        if torch.equal(first, other):
            raise WrongAnswerError(
                f"seeds {seed} and {seed + 1} gave the same tensor: is the seed argument used?"
            )

    return f"same seed, same draw: {over_cases(_SEEDS, check_one)}"


@exercise("ex-start-budget", CHAPTER, solution=lambda: 50_000)
def _budget(steps: Any) -> None:
    """20 s of budget at 0.4 ms per step."""
    if not isinstance(steps, int):
        raise WrongAnswerError(f"steps should be an int, got {type(steps).__name__}")
    check_equal(steps, round(20 / 0.4e-3), name="steps", reveal=False)


@exercise("ex-start-format", CHAPTER, solution=_first_cell_tags)
def _format(tags: Any) -> None:
    """The tags of the first code cell of the MyST text ``source`` defined in the starter cell."""
    if not isinstance(tags, list | tuple | set):
        raise WrongAnswerError(f"tags should be a list of strings, got {type(tags).__name__}")
    if not all(isinstance(tag, str) for tag in tags):
        raise WrongAnswerError("tags should hold strings, as in cell.metadata['tags']")
    if "remove-cell" not in tags:
        raise WrongAnswerError(
            "the first code cell of `source` carries a tag that hides it in the website; parse "
            "`source` with jupytext.reads(source, fmt='md:myst') and look at "
            "nb.cells[i].metadata for the first cell whose cell_type is 'code'"
        )
    check_equal(sorted(tags), sorted(_first_cell_tags()), name="tags", reveal=False)
