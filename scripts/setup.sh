#!/usr/bin/env bash
# Installs what numcnn needs on a fresh Debian machine: the real Fashion-MNIST (Debian package) and numcnn with
# all extras (PyTorch 2.13 CPU is the test oracle only, never a runtime dependency). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

if ! python -c "import numcnn.cli, torch, hypothesis, pytest, tqdm, matplotlib, PIL, onnx" 2>/dev/null || [ "${NUMCNN_REINSTALL:-0}" = 1 ]; then
  python -m pip install -q -e ".[all]"
fi
