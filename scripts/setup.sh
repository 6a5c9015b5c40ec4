#!/usr/bin/env bash
# Installs what numcnn needs on a fresh Debian machine: the real Fashion-MNIST (Debian package), the MPI runtime for
# numcnn.distributed (Open MPI) and numcnn with all extras plus mpi4py (PyTorch 2.13 CPU is the test oracle only,
# never a runtime dependency). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
APT_PACKAGES=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || APT_PACKAGES+=(dataset-fashion-mnist)
command -v mpirun >/dev/null && command -v mpicc >/dev/null || APT_PACKAGES+=(openmpi-bin libopenmpi-dev)
if [ "${#APT_PACKAGES[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

# mpi4py compiles against the MPI found by mpicc: only where there is one.
EXTRAS="all"; IMPORTS="numcnn.cli, torch, hypothesis, pytest, tqdm, matplotlib, PIL, onnx"
if command -v mpicc >/dev/null; then EXTRAS="all,mpi"; IMPORTS="$IMPORTS, mpi4py"; fi
if ! python -c "import $IMPORTS" 2>/dev/null || [ "${NUMCNN_REINSTALL:-0}" = 1 ]; then
  python -m pip install -q -e ".[$EXTRAS]"
fi
