#!/usr/bin/env bash
# FacePolicy's two commands (see README):
#   bash run.sh demo   set up from scratch (apt packages, .venv with bpy 5.0.1) and run the main job → out/
#   bash run.sh test   set up whatever is missing and run the whole test suite (ruff, then pytest on bpy 5.0.1 and 4.2)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3.11}"
BPY_MAIN="bpy==5.0.1"
BPY_LTS="bpy==4.2.*"
# bpy 4.2/5.0 are built against numpy 1.x; numpy 2 breaks parts of them.
NUMPY="numpy==1.26.4"

# Debian packages: X/GL libraries the bpy wheel links against, a C++ compiler for the splat preview;
# for the tests also real speech (LibriVox clips), the TTS voices the training corpus is made with, and wine (the
# Windows zip's splat library is run under it). The TTS tools (GPL) only make training data: the add-on never links
# or bundles them.
APT_RUNTIME=(libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libxext6 libxxf86vm1
             g++)
APT_TEST=(pocketsphinx-testdata espeak-ng festival festlex-cmu festvox-kallpc16k festvox-kdlpc16k
          festvox-us-slt-hts flite sox wine64)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
  if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then missing+=(python3-venv); fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to apt-get install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# make_venv DIR BPY_SPEC EXTRAS: create DIR (if needed) and install the project + deps; skipped when up to date.
make_venv() {
  local dir="$1" bpy_spec="$2" extras="$3"
  command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; install Python 3.11" >&2; exit 1; }
  local stamp="$dir/.facepolicy-setup"
  local want
  want="$(cat pyproject.toml run.sh | sha256sum | cut -c1-16) $bpy_spec $extras"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/facepolicy" ]; then return 0; fi
  log "setting up $dir ($bpy_spec)"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet "$bpy_spec" "$NUMPY" -e ".[$extras]"
  echo "$want" > "$stamp"
}

build_preview() {
  log "building the native libraries: the splat preview's (CPU; CUDA too where nvcc exists) and phone recognition's $*"
  .venv/bin/python -m facepolicy.preview.build "$@"
}

# The main job: bake the bundled voice line onto the bundled head, then picture it.
main_job() {
  local fp=.venv/bin/facepolicy
  mkdir -p out
  log "facepolicy doctor"
  "$fp" doctor > out/doctor.txt || { cat out/doctor.txt; exit 1; }
  tail -n 1 out/doctor.txt
  log "bake assets/audio/demo/dashwood.wav onto the default head → out/demo.{blend,fbx,csv,json}"
  printf 'audio,output\n%s,demo\n' "$PWD/assets/audio/demo/dashwood.wav" > out/demo_manifest.csv
  "$fp" bake --manifest out/demo_manifest.csv --format blend,fbx,csv,json -o out
  log "Cycles still of the animated face → out/demo.png"
  .venv/bin/python tools/render_still.py out/demo.blend -o out/demo.png --size 480 --samples 24 > out/render.log 2>&1 \
    || { tail -n 20 out/render.log; exit 1; }
  tail -n 1 out/render.log
  log "Gaussian-splat contact sheet → out/demo_sheet.png"
  "$fp" preview out/demo.json -o out/demo_sheet.png --frames 30:150:10
  log "done: $(cd out && ls demo*.* | tr '\n' ' ')"
}

run_tests() {
  log "ruff"
  .venv/bin/ruff check .
  log "pytest (bpy 5.0.1: unit, blender, model)"
  .venv/bin/python -m pytest tests
  log "pytest (bpy 4.2 LTS: blender and the Blender journeys)"
  local rc=0
  .venv-bpy42/bin/python -m pytest -m blender tests/blender tests/journeys || rc=$?
  # exit code 5 means the marker selected no tests, which is not a failure
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then exit "$rc"; fi
}

case "${1:-}" in
  demo)
    apt_install "${APT_RUNTIME[@]}"
    make_venv .venv "$BPY_MAIN" "test,video"
    build_preview
    main_job
    ;;
  test)
    apt_install "${APT_RUNTIME[@]}" "${APT_TEST[@]}"
    make_venv .venv "$BPY_MAIN" "test,ray,train,video"
    make_venv .venv-bpy42 "$BPY_LTS" "test,video"
    build_preview --cpu-only  # tests/unit/test_cuda_build.py compiles the CUDA library itself
    run_tests
    ;;
  *)
    echo "usage: bash run.sh demo|test" >&2
    exit 2
    ;;
esac
