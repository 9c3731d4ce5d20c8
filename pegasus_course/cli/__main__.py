"""`python -m pegasus_course.cli ...` (also under torchrun) runs the command line."""

import sys

from . import main

sys.exit(main())
