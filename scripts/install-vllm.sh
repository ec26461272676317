#!/usr/bin/env bash
# Install vLLM 0.33.0 (Python code only) + CPU torch + the "light" deps needed to
# import vllm.entrypoints.cli.serve, build the `vllm serve` parser and run its
# validation with VLLM_TARGET_DEVICE=cpu (see tests/conformance/vllm_cli.py).
#
# Usage: PYTHON=.venv/bin/python scripts/install-vllm.sh   (default: python)
# Idempotent: if every pin is already installed it does not call pip at all.
#
# Notes
# - vllm's own metadata pins torch==2.14.0 and ~80 heavy/CUDA deps, so vllm is
#   installed with --no-deps and everything else is pinned here, also with
#   --no-deps (xgrammar would otherwise pull torch + triton).
# - torch==2.13.0: on this workplace's machines pip's find-links (/opt/wheels)
#   holds torch-2.13.0+cpu, which pip prefers (local version label). Elsewhere
#   set TORCH_INDEX_URL (e.g. a CPU wheel index) to avoid the CUDA build.
# - Versions inside vllm's declared ranges: transformers<5.21, fastapi<0.137,
#   llguidance<1.8, xgrammar==0.2.8, apache-tvm-ffi==0.1.11.
set -euo pipefail

start=$(date +%s)
PY="${PYTHON:-python}"

TORCH_PIN="torch==2.13.0"
VLLM_PIN="vllm==0.33.0"
LIGHT_PINS=(
  aiohappyeyeballs==2.7.1
  aiohttp==3.14.5
  aiosignal==1.4.0
  annotated-doc==0.0.7
  anyio==4.16.0
  apache-tvm-ffi==0.1.11
  cachetools==8.0.1
  cbor2==6.3.0
  click==8.5.1
  cloudpickle==3.1.2
  fastapi==0.136.3
  frozenlist==1.8.0
  h11==0.16.0
  httpcore2==2.16.2
  httpx2==2.16.2
  huggingface_hub==2.4.0
  llguidance==1.7.6
  msgspec==0.22.0
  multidict==7.2.1
  numpy==2.4.6
  openai==3.54.0
  openai-harmony==0.0.8
  orjson==3.13.0
  partial-json-parser==0.2.1.1.post7
  pillow==13.0.0
  prometheus_client==0.26.0
  propcache==0.5.4
  psutil==7.2.2
  py-cpuinfo==9.0.0
  pybase64==1.5.1
  pyzmq==27.3.0
  regex==2026.11.15
  safetensors==0.8.0
  sniffio==1.3.1
  starlette==1.10.0
  tokenizers==0.23.3
  tqdm==4.70.1
  transformers==5.20.2
  truststore==0.10.5
  uvicorn==0.54.0
  uvloop==0.23.0
  watchfiles==1.3.0
  xgrammar==0.2.8
  yarl==1.25.1
)

# Also imported by vllm's serve CLI; normally already in the project venv
# (pydantic/PyYAML are project deps): same versions, needed in a bare venv.
BASE_PINS=(
  annotated-types==0.8.0
  attrs==26.1.0
  certifi==2026.10.18
  charset-normalizer==3.5.2
  idna==3.20
  packaging==26.3
  pydantic==2.13.4
  pydantic_core==2.46.4
  PyYAML==6.0.3
  requests==2.34.2
  typing-inspection==0.4.5
  urllib3==2.8.0
)

# Print the pins (from the args) that are not installed at that exact version.
missing() {
  "$PY" - "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    # torch's CPU wheel is "2.13.0+cpu": compare without the local label.
    if have is None or have.split("+")[0] != want:
        print(pin)
EOF
}

mapfile -t todo_torch < <(missing "$TORCH_PIN")
if ((${#todo_torch[@]})); then
  echo "installing $TORCH_PIN"
  "$PY" -m pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_PIN"
fi

mapfile -t todo < <(missing "$VLLM_PIN" "${LIGHT_PINS[@]}" "${BASE_PINS[@]}")
if ((${#todo[@]})); then
  echo "installing (--no-deps): ${todo[*]}"
  "$PY" -m pip install --no-deps "${todo[@]}"
fi

# After an install (or with VERIFY=1), check that the serve CLI imports
# (~6-10 s on 2 cores, so skipped when nothing changed).
if ((${#todo_torch[@]} + ${#todo[@]})) || [[ "${VERIFY:-0}" == 1 ]]; then
  if ! VLLM_TARGET_DEVICE="${VLLM_TARGET_DEVICE:-cpu}" "$PY" -c \
    "import vllm.entrypoints.cli.serve" >/dev/null 2>&1; then
    echo "error: import vllm.entrypoints.cli.serve failed:" >&2
    VLLM_TARGET_DEVICE="${VLLM_TARGET_DEVICE:-cpu}" "$PY" -c \
      "import vllm.entrypoints.cli.serve" 2>&1 | tail -5 >&2
    exit 1
  fi
fi

echo "install-vllm: done in $(($(date +%s) - start))s"
