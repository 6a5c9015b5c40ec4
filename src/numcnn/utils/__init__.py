"""Utilities: finite-difference gradient checks and model summaries."""

from .gradcheck import GradcheckError, gradcheck
from .summary import Summary, summary

__all__ = ["GradcheckError", "Summary", "gradcheck", "summary"]
