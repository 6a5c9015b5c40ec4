# The two commands of the README. Each one installs what it needs first (scripts/setup.sh).
PYTHON ?= python
EPOCHS ?= 2

.PHONY: setup train test lint
setup:
	./scripts/setup.sh

train: setup
	$(PYTHON) examples/train_fashion_mnist.py --epochs $(EPOCHS)

test: setup
	$(PYTHON) -m pytest

lint:
	ruff check src tests examples
