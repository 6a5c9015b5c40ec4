"""The JSON Schema of a checkpoint's state.json (format numcnn-checkpoint/1): every field numcnn reads back, with the
type and range it can hold, so a hand-edited or damaged file is refused when it is read -- naming the field, the
value and what was expected -- instead of failing halfway through a resumed epoch."""

from __future__ import annotations

from .._schema import array, boolean, integer, nullable, number, obj, string
from ..kernels.runtime import BACKENDS
from .history import FIELDS

FORMAT = "numcnn-checkpoint/1"
MAX_BYTES = 64 << 20  # a state.json holds no arrays: a few kB per epoch of history

_GENERATOR = obj({
    "bit_generator": string(100),
    "state": {"type": "object", "description": "an object (the generator's state)"},
    "has_uint32": integer(0, 1),
    "uinteger": integer(0),
}, required=["bit_generator", "state"], what="a NumPy generator state (an object)")

_RECORD = obj({name: integer(1) if name == "epoch" else nullable(number()) for name in FIELDS},
              required=["epoch"], what="an epoch's record (an object)")

STATE_SCHEMA = obj({
    "format": {"const": FORMAT, "description": f'"{FORMAT}"'},
    "numcnn_version": string(100),
    "epoch": integer(0),
    "history": nullable(obj({"records": array(_RECORD, what="epoch records")}, what="an object (the history)")),
    "rng": obj({"numcnn": _GENERATOR, "loader": array(nullable(_GENERATOR), what="generator states (or null)")},
               required=["numcnn"], what="an object (random generator states: without them no resume is exact)"),
    "scheduler": nullable(obj({
        "last_epoch": integer(-1),
        "_step_count": integer(0),
        "base_lrs": array(number(0), what="learning rates (numbers >= 0)"),
        "_last_lr": array(number(0), what="learning rates (numbers >= 0)"),
    }, what="an object (the scheduler's state)")),
    "optimizer": obj({
        "state": {"type": "object", "description": "an object (per-parameter state)",
                  "additionalProperties": obj({"step": number(0)}, what="a parameter's state (an object)")},
        "param_groups": array(obj({"lr": number(0), "params": array(integer(0), what="parameter indices")},
                                  required=["lr", "params"], what="a parameter group (an object)"),
                              1, what="parameter groups"),
    }, required=["state", "param_groups"], what="an object (the optimizer's state)"),
    "runtime": obj({
        "backend": {"enum": list(BACKENDS), "description": "one of " + ", ".join(f'"{b}"' for b in BACKENDS)},
        "memory_budget": integer(1),
        "algorithms": {"type": "object", "description": "an object (the algorithm table)"},
        "autotune": boolean(),
    }, what="an object (the kernels' runtime state)"),
    "extra": {"type": "object", "description": "an object"},
}, required=["format", "epoch", "rng"], what="a checkpoint state (a JSON object)")
