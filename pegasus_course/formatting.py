"""Text a person reads at a glance (the ground layer: imports nothing of the course, so any module may use it)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """A rounded duration a person reads at a glance: '0.35 s', '40 s', '7 min', '1.5 h'."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
