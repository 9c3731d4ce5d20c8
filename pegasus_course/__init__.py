"""pegasus_course: the companion package of the winged-horses course.

Every computation of the course lives here, one module per concept; the
notebooks explain, plot and call. Import modules explicitly, for example
``from pegasus_course import sigmas, losses, sampling``. ``pegasus_course.nn``
would shadow ``torch.nn`` if star-imported, so import its classes by name.
"""

__version__ = "0.1.0"
