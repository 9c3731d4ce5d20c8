"""The course's exercises: a checker per ``my_*`` function the learner writes, and the reference solutions.

Each checker calls the learner's function the way the notebook's next cells will (the argument types and
shapes they pass, score functions as strict as the U-Net), holds what it returns to what those cells need,
compares it with the package's on seeded inputs and names the common mistakes (see :mod:`.core`). A
notebook runs a checker, then ``exercises.use(my_x, exercises.check_x, solution_x)``: the learner's function
when it passes, else the reference solution, with a line that says which and why.

``core`` holds the verdict, the matcher and :func:`use` / :func:`solution` / :func:`show_solution`; ``nb01`` ..
``nb07`` the checkers of each notebook; ``solutions`` the reference solutions, imported only when asked for.
"""

from .core import CheckResult, reset_attempts, show_solution, solution, solution_source, use
from .nb01 import check_dsm_loss, check_langevin_step
from .nb02 import check_num_levels, check_variance_ratio
from .nb03 import check_instance_norm_pp
from .nb04 import check_training_step
from .nb05 import check_annealed_langevin
from .nb06 import check_interpolate
from .nb07 import check_guided_score

__all__ = ["CheckResult", "check_annealed_langevin", "check_dsm_loss", "check_guided_score", "check_instance_norm_pp",
           "check_interpolate", "check_langevin_step", "check_num_levels", "check_training_step",
           "check_variance_ratio", "reset_attempts", "show_solution", "solution", "solution_source", "use"]
