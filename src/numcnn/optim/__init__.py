"""Optimizers and learning-rate schedulers with PyTorch's update rules, defaults and state_dict layout.

Works on any parameter object with ``.array`` (ndarray, updated in place; numcnn's Tensor and Parameter have it)
and ``.grad`` (None or an object whose ``.array`` is an ndarray); imports nothing else from numcnn.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "ASGD",
    "lr_scheduler",
]
