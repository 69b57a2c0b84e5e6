"""Auto-checked exercises: ``check(exercise_id, answer)``.

Format of an exercise in a chapter (one MyST source gives the website, and later the student and
instructor notebooks):

1. a statement: ``{exercise}`` with ``:label: ex-<topic>-<name>``; the label is the exercise id;
2. a starter code cell tagged ``exercise-starter``: the names the student must define, with
   ``...`` or ``raise NotImplementedError`` as the body;
3. the solution between ``{solution-start} <label>`` and ``{solution-end}`` (a dropdown in the
   website; its code cells are executed there and redefine the starter's names);
4. a check cell tagged ``exercise-check`` calling ``check("<label>", answer)``.

The references and the checking logic live here, per chapter, never in the notebook, so a
notebook without solutions can still be checked. Messages never print an exercise's reference.
"""

from . import (  # noqa: F401  (importing a module registers its exercises)
    attention,
    backpropagation,
    convolution,
    core,
    diffusion,
    how_to_use,
    policy_gradient,
)
from .core import *  # noqa: F403  (the public API is core's)

__all__ = core.__all__
