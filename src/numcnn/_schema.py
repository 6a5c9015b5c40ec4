"""Reading a JSON file numcnn wrote (a run's config.json, a checkpoint's state.json) without trusting it.

A file may have been edited by hand, damaged, or forged. :func:`read_json` refuses it before anything is built from
it: too large (checked before reading), not JSON, nested deeper than any file numcnn writes, or not matching its
JSON Schema (validated with the ``jsonschema`` library). The message is one line naming the file, the field, the
value found there and what was expected::

    runs/a/config.json: recipe.batch_size is "100", expected an integer >= 1

:func:`clean_json` is the other direction: what numcnn writes as JSON, made plain (NumPy values to Python, NaN and
infinities to null).

The ``integer``/``number``/... helpers build schema leaves that carry their own wording of "expected" (a
``description``), so a message reads as the schema does.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jsonschema
import numpy as np

#: No file numcnn writes nests deeper than this (a checkpoint's scheduler state is ~6 levels).
MAX_DEPTH = 32


class SchemaError(ValueError):
    """A JSON file that is not what it should be; the message names the file, the field and the value."""


def integer(lo: int | None = None, hi: int | None = None) -> dict:
    schema = {"type": "integer", "description": _bounded("an integer", lo, hi)}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema


def number(lo: float | None = None, hi: float | None = None, exclusive_lo: bool = False) -> dict:
    schema = {"type": "number", "description": _bounded("a number", lo, hi, exclusive_lo)}
    if lo is not None:
        schema["exclusiveMinimum" if exclusive_lo else "minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema


def string(max_length: int = 1000) -> dict:
    return {"type": "string", "maxLength": max_length, "description": f"a string of at most {max_length} characters"}


def one_of(values) -> dict:
    values = list(values)
    return {"enum": values, "description": "one of " + ", ".join(json.dumps(v) for v in values)}


def boolean() -> dict:
    return {"type": "boolean", "description": "true or false"}


def array(items: dict, min_items: int = 0, max_items: int | None = None, what: str | None = None) -> dict:
    schema = {"type": "array", "items": items, "minItems": min_items}
    if max_items is not None:
        schema["maxItems"] = max_items
    count = (f"{min_items} to {max_items}" if max_items is not None and max_items != min_items
             else str(min_items) if max_items == min_items else f"at least {min_items}")
    schema["description"] = f"a list of {count} {what or items.get('description', 'items')}"
    return schema


def obj(properties: dict, required=(), what: str = "an object") -> dict:
    """An object with these fields (others are allowed: files of later versions may hold more)."""
    return {"type": "object", "properties": properties, "required": list(required), "description": what}


def nullable(schema: dict) -> dict:
    return {"anyOf": [{"type": "null"}, schema], "description": f"null or {schema.get('description', 'a value')}"}


def _bounded(kind: str, lo, hi, exclusive_lo: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{kind} from {lo} to {hi}"
    if lo is not None:
        return f"{kind} {'>' if exclusive_lo else '>='} {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def read_json(path: str | os.PathLike, max_bytes: int = 1 << 20):
    """The JSON value in ``path``; SchemaError when it is larger than ``max_bytes`` (checked before reading), not
    UTF-8 JSON, or nested deeper than MAX_DEPTH."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise SchemaError(f"{path}: {size:,} bytes, more than the {max_bytes:,} such a file can hold; refusing to "
                          "read it")
    return parse_json(path.read_bytes(), str(path))


def parse_json(text: str | bytes, where: str):
    """The JSON value in ``text``; SchemaError naming ``where`` when it is not UTF-8 JSON or nests deeper than
    MAX_DEPTH."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SchemaError(f"{where}: not valid JSON ({' '.join(str(e).split()) or type(e).__name__})") from None
    if _depth(value) > MAX_DEPTH:
        raise SchemaError(f"{where}: nested more than {MAX_DEPTH} levels deep; no file numcnn writes is")
    return value


def _depth(value) -> int:
    """How deeply ``value`` nests, counted without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def check(value, schema: dict, where: str) -> None:
    """Raise SchemaError naming ``where``, the first field that does not match ``schema``, its value and what was
    expected there."""
    validator = jsonschema.Draft202012Validator(schema)
    error = min(validator.iter_errors(value), key=_order, default=None)
    if error is not None:
        raise SchemaError(f"{where}: {describe(_innermost(error))}")


def _order(error: jsonschema.ValidationError):
    return (len(error.absolute_path), [str(p) for p in error.absolute_path])


def _innermost(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a value that matched no branch of an ``anyOf`` (``nullable``): the error inside the branch that got
    furthest, when it is about a field deeper down (``history.records.0.epoch``, not all of ``history``)."""
    deeper = [e for e in error.context or () if len(e.absolute_path) > len(error.absolute_path)]
    if error.validator != "anyOf" or not deeper:
        return error
    return _innermost(min(deeper, key=_order))


def describe(error: jsonschema.ValidationError) -> str:
    """``"recipe.batch_size is "100", expected an integer >= 1"`` for one validation error."""
    field = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        where = f"{field}.{missing}" if field else missing
        expected = error.schema.get("properties", {}).get(missing, {}).get("description", "a value")
        return f"{where} is missing, expected {expected}"
    expected = error.schema.get("description") or error.message
    return f"{field or 'the file'} is {_show(error.instance)}, expected {expected}"


def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def clean_json(obj):
    """NumPy scalars/arrays -> plain Python; NaN and infinities -> None (standard JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
