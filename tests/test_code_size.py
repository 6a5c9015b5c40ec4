"""A size budget for the code a reader walks through first (like tinygrad's line-count check): no file under
kernels/, cli/ or onnx/ over 400 lines, and no function under kernels/ or cli/ over 60 lines (docstring included).
onnx/ has the file budget only: ``to_onnx`` and ``OnnxModule.__init__`` run longer than 60 lines."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "numcnn"
FILE_LINES, FUNCTION_LINES = 400, 60
FILE_BUDGET, FUNCTION_BUDGET = ("kernels", "cli", "onnx"), ("kernels", "cli")
FILES = sorted(p for d in FILE_BUDGET for p in (SRC / d).rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SRC)) for p in FILES])
def test_file_and_functions_fit_the_budget(path):
    text = path.read_text()
    assert len(text.splitlines()) <= FILE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    if path.relative_to(SRC).parts[0] not in FUNCTION_BUDGET:
        return
    long = [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {FUNCTION_LINES} lines: {long}"
