"""``numcnn run script.py [args...]``: a PyTorch script, as written, on numcnn.

Inside this process only, ``import torch`` gives ``numcnn`` and ``import torchvision`` gives ``numcnn.vision``: every
module name under ``torch`` / ``torchvision`` is answered with the numcnn module PyTorch's name maps to
(:func:`numcnn_name`), so ``import torch.nn as nn``, ``from torch.utils.data import DataLoader`` and
``import torchvision.transforms as T`` all resolve. The script then runs as ``python script.py args`` would
(``__name__ == "__main__"``, ``sys.argv``, its folder first on ``sys.path``). When it reaches a PyTorch name numcnn
does not have, the run ends with one line naming that name and the script's line, and where the coverage list
is (docs/pytorch.md); any other error is the script's own and prints Python's traceback.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import runpy
import sys
import traceback
from pathlib import Path

from .errors import CLIError

COVERAGE = "docs/pytorch.md in numcnn's source tree"
#: PyTorch module -> numcnn module, where the names differ (longest prefix wins); any other torch.X is numcnn.X.
RENAMES = {"torch": "numcnn", "torchvision": "numcnn.vision", "torch.utils.data": "numcnn.utils.data"}


def numcnn_name(name: str) -> str | None:
    """The numcnn module that stands for PyTorch module ``name`` (None: not a PyTorch name)."""
    for torch_name in sorted(RENAMES, key=len, reverse=True):
        if name == torch_name or name.startswith(torch_name + "."):
            return RENAMES[torch_name] + name[len(torch_name):]
    return None


def torch_name(name: str) -> str:
    """The PyTorch spelling of numcnn module ``name`` (the inverse of :func:`numcnn_name`)."""
    for torch_prefix, ours in sorted(RENAMES.items(), key=lambda kv: len(kv[1]), reverse=True):
        if name == ours or name.startswith(ours + "."):
            return torch_prefix + name[len(ours):]
    return name


class TorchAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder that answers ``torch...`` / ``torchvision...`` imports with the numcnn module of the same place."""

    def find_spec(self, fullname, path=None, target=None):
        ours = numcnn_name(fullname)
        if ours is None:
            return None
        try:
            module = importlib.import_module(ours)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name.startswith("numcnn"):
                return None  # no such module in numcnn: Python's own ModuleNotFoundError names the torch name
            raise
        return importlib.util.spec_from_loader(fullname, self, origin=getattr(module, "__file__", None))

    def create_module(self, spec):
        module = importlib.import_module(numcnn_name(spec.name))
        self._spec = module.__spec__  # the import system sets __spec__ on what we return: put numcnn's back
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


def missing_name(error: BaseException) -> str | None:
    """The PyTorch name an AttributeError / ImportError of the script is about, when it is one numcnn lacks."""
    if isinstance(error, ModuleNotFoundError) and error.name and numcnn_name(error.name.split(".")[0]):
        return error.name
    if isinstance(error, ImportError) and error.name and error.name.startswith("numcnn"):
        missing = str(error).split("'")[1] if str(error).startswith("cannot import name '") else None
        return f"{torch_name(error.name)}.{missing}" if missing else torch_name(error.name)
    if isinstance(error, AttributeError) and error.name is not None:
        obj = getattr(error, "obj", None)
        owner = getattr(obj, "__name__", None) if isinstance(obj, type(sys)) else None
        if owner is not None and owner.startswith("numcnn"):
            return f"{torch_name(owner)}.{error.name}"
        cls = type(obj)
        if cls.__module__.startswith("numcnn"):
            return f"{torch_name(cls.__module__.split('.')[0])}.{cls.__name__}.{error.name}"
    return None


def _script_line(error: BaseException, script: Path) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == script]
    return f"{script.name}:{frames[-1].lineno}" if frames else script.name


def _print_as_python(error: BaseException, script: Path) -> int:
    """Python's traceback of ``error`` from the script's first frame on (not numcnn run's own frames); status 1."""
    tb = error.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve() != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)
    return 1


def run_script(script: Path, args: list[str]) -> int:
    """Run ``script`` with ``args`` as ``sys.argv[1:]``, ``torch`` resolved to numcnn; its exit status."""
    finder = TorchAliases()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    real = {k: sys.modules.pop(k) for k in list(sys.modules) if numcnn_name(k) is not None}  # a real torch, if loaded
    sys.meta_path.insert(0, finder)
    sys.argv, sys.path[0:0] = [str(script), *args], [str(script.parent)]
    try:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (AttributeError, ImportError) as e:
        name = missing_name(e)
        if name is None:
            return _print_as_python(e, script)
        print(f"numcnn run: {_script_line(e, script)}: {name} is not in numcnn (yet); what numcnn covers, and how it "
              f"differs: {COVERAGE}", file=sys.stderr)
        return 1
    except Exception as e:  # the script's own error: shown as `python script.py` would show it
        return _print_as_python(e, script)
    finally:
        sys.meta_path.remove(finder)
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in [k for k in sys.modules if numcnn_name(k) is not None]:
            del sys.modules[name]
        sys.modules.update(real)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="run a PyTorch script as written, on numcnn",
        description="Run a PyTorch training script unchanged: inside this process, 'import torch' gives numcnn and "
                    "'import torchvision' gives numcnn.vision. The script gets ARGS as its command line. A PyTorch "
                    f"name numcnn lacks ends the run with one line naming it; the coverage list: {COVERAGE}.")
    p.add_argument("script", metavar="SCRIPT.py", help="the script to run")
    p.add_argument("script_args", nargs="...", metavar="ARGS", help="its own arguments")
    p.set_defaults(run=run)


def run(args) -> int:
    script = Path(args.script).resolve()
    if not script.is_file():
        raise CLIError(f"{args.script}: no such script")
    return run_script(script, list(args.script_args))
