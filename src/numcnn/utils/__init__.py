"""Utilities: finite-difference gradient checks, model summaries, and ``numcnn.utils.data`` (torch.utils.data's
names; loaded by ``import numcnn`` as ``torch.utils.data`` is by ``import torch``)."""

from . import data
from .gradcheck import GradcheckError, gradcheck
from .summary import Summary, summary

__all__ = ["GradcheckError", "Summary", "data", "gradcheck", "summary"]
