# The two commands of the README. Each one installs what it needs first (scripts/setup.sh): make train only what
# training needs, make test everything (PyTorch as the test oracle, onnx, Open MPI + mpi4py).
PYTHON ?= python
EPOCHS ?= 3
OUT ?= runs/convnet-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup setup-train setup-test train test lint
setup: setup-test

setup-train:
	./scripts/setup.sh train

setup-test:
	./scripts/setup.sh test

train: setup-train
	$(PYTHON) -m numcnn train --model convnet --dataset fashion-mnist --epochs $(EPOCHS) --out $(OUT)

test: setup-test
	$(PYTHON) -m pytest

lint:
	ruff check src tests docs
