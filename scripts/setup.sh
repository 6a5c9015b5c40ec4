#!/usr/bin/env bash
# Installs what numcnn needs on a fresh Debian machine, for one of the README's two commands. Safe to run again.
#   scripts/setup.sh train   what `make train` needs: the real Fashion-MNIST (Debian package) and numcnn with the
#                            [cli] extra (tqdm, matplotlib, pillow); no PyTorch, onnx or MPI.
#   scripts/setup.sh [test]  everything (the default, for `make test` and .ci/run): also the MPI runtime for
#                            numcnn.distributed (Open MPI) and numcnn with all extras plus mpi4py (PyTorch 2.13 CPU is
#                            the test oracle only, never a runtime dependency).
# NUMCNN_REINSTALL=1 runs pip even when everything already imports.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-test}"
case "$MODE" in
  train|test) ;;
  *) echo "usage: $0 [train|test]   (default: test)" >&2; exit 2 ;;
esac

SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
APT_PACKAGES=()
DATA=/usr/share/datasets/fashion-mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$DATA/$f.gz" ] || { APT_PACKAGES+=(dataset-fashion-mnist); break; }
done
if [ "$MODE" = test ]; then
  command -v mpirun >/dev/null && command -v mpicc >/dev/null || APT_PACKAGES+=(openmpi-bin libopenmpi-dev)
  # the browser tests of numcnn explore drive Debian's headless Chromium through its chromedriver
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || APT_PACKAGES+=(chromium chromium-driver)
fi
if [ "${#APT_PACKAGES[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

if [ "$MODE" = train ]; then
  EXTRAS="cli"; IMPORTS="numcnn.cli, tqdm, matplotlib, PIL"
else
  EXTRAS="all"; IMPORTS="numcnn.cli, torch, hypothesis, pytest, tqdm, matplotlib, PIL, onnx, starlette, uvicorn, httpx, selenium, multipart, jsonschema"
  # mpi4py compiles against the MPI found by mpicc: only where there is one.
  if command -v mpicc >/dev/null; then EXTRAS="all,mpi"; IMPORTS="$IMPORTS, mpi4py"; fi
fi
if ! python -c "import $IMPORTS" 2>/dev/null || [ "${NUMCNN_REINSTALL:-0}" = 1 ]; then
  python -m pip install -q -e ".[$EXTRAS]"
fi
