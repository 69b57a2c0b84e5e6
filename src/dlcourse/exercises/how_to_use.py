"""Exercise checks for chapter 0.1, How to use this course."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_equal, exercise

CHAPTER = "00-start/01-how-to-use"


def _seeded_draw(seed: int) -> torch.Tensor:
    from dlcourse.train import seed_everything

    seed_everything(seed)
    return torch.randn(5)


def _first_cell_tags() -> list[str]:
    return ["remove-cell"]


@exercise("ex-start-reproduce", CHAPTER, solution=lambda: _seeded_draw)
def _reproduce(draw: Any) -> str:
    """``draw(seed)`` must return the same tensor for the same seed, another for another seed."""
    first, second, other = (call_answer(draw, s) for s in (7, 7, 8))
    if not all(torch.is_tensor(t) for t in (first, second, other)):
        raise WrongAnswerError("draw(seed) should return a tensor")
    if not torch.equal(first, second):
        raise WrongAnswerError(
            "two calls with seed 7 gave different tensors: seed inside the function, "
            "before drawing (dlcourse.train.seed_everything)"
        )
    if torch.equal(first, other):
        raise WrongAnswerError("seeds 7 and 8 gave the same tensor: is the seed argument used?")
    return "same seed, same draw"


@exercise("ex-start-budget", CHAPTER, solution=lambda: 50_000)
def _budget(steps: Any) -> None:
    """20 s of budget at 0.4 ms per step."""
    if not isinstance(steps, int):
        raise WrongAnswerError(f"steps should be an int, got {type(steps).__name__}")
    check_equal(steps, round(20 / 0.4e-3), name="steps", reveal=False)


@exercise("ex-start-format", CHAPTER, solution=_first_cell_tags)
def _format(tags: Any) -> None:
    """The tags of this chapter's first code cell."""
    if not isinstance(tags, list | tuple | set):
        raise WrongAnswerError(f"tags should be a list of strings, got {type(tags).__name__}")
    if "remove-cell" not in tags:
        raise WrongAnswerError(
            "the first code cell carries a tag that hides it in the website; look at "
            "nb.cells[i].metadata for the first cell whose cell_type is 'code'"
        )
