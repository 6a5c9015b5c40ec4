# The two commands of the README. Each one installs what it needs first (scripts/setup.sh).
PYTHON ?= python
EPOCHS ?= 3
OUT ?= runs/convnet-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup train test lint
setup:
	./scripts/setup.sh

train: setup
	$(PYTHON) -m numcnn train --model convnet --dataset fashion-mnist --epochs $(EPOCHS) --out $(OUT)

test: setup
	$(PYTHON) -m pytest

lint:
	ruff check src tests docs
