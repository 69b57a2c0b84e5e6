"""Auto-checked exercises: ``check(exercise_id, answer)``.

Format of an exercise in a chapter (one MyST source gives the website, the student notebook and
the instructor notebook; see the chapter "Teaching with this course"):

1. a statement: ``{exercise}`` with ``:label: ex-<topic>-<name>``; the label is the exercise id;
2. a starter code cell tagged ``exercise-starter``: the names the student must define, with
   ``...`` or ``raise NotImplementedError`` as the body;
3. the solution between ``{solution-start} <label>`` and ``{solution-end}`` (a dropdown in the
   website; its code cells are executed there and redefine the starter's names);
4. a check cell tagged ``exercise-check``, exactly ``check("<label>", <answer expression>)``.

The references and the checking logic live here, one module per chapter, registered with
``@exercise(id, chapter, solution=...)``, never in the notebook, so a notebook without solutions
can still be checked. A check tries a function on several seeded inputs and edge cases
(``over_cases``) and compares with tolerances (``check_close``, ``check_dtype``,
``check_equal``); its messages never print an exercise's reference. ``dlcourse.assign`` turns a
chapter into student and instructor notebooks; ``dlcourse.grade`` grades submissions, running
``probe`` in place of each check cell.
"""

from . import (  # noqa: F401  (importing a module registers its exercises)
    attention,
    augmentation_transfer,
    autograd_basics,
    backpropagation,
    convolution,
    core,
    decoding,
    diffusion,
    efficient_attention,
    gated_rnn,
    generalization,
    gradient_descent,
    how_to_use,
    initialization,
    landscape,
    language_models,
    linear_models,
    mlp,
    modern_cnns,
    normalization,
    object_detection,
    optimizers,
    policy_gradient,
    pooling_lenet,
    positional_encoding,
    pretrained_language_models,
    regularization,
    rnn,
    schedules,
    segmentation,
    stability,
    style_transfer,
    tensors,
    transformer,
    word_embeddings,
)
from .core import *  # noqa: F403  (the public API is core's)

__all__ = core.__all__
