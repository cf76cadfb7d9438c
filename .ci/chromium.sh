#!/usr/bin/env bash
# Chromium and the Python playwright package for the console's browser tests
# (tests/console). Installs Debian's chromium when it is missing and we may (root, or CI=true
# with sudo); otherwise says what is missing. Never runs `playwright install` (which fetches a
# browser of its own).
set -euo pipefail
python="${PYTHON:-python3}"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
"$python" -c 'import playwright' 2>/dev/null || missing+=(playwright)
[ ${#missing[@]} -eq 0 ] && { echo "chromium and playwright: present"; exit 0; }

for m in "${missing[@]}"; do
  case "$m" in
    chromium)
      if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq chromium
      elif [ "${CI:-}" = true ] && command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo apt-get install -y -qq chromium
      else
        echo "missing: chromium (Debian: apt-get install chromium; /usr/bin/chromium)" >&2
      fi ;;
    playwright)
      if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
        "$python" -m pip install -q "playwright==1.65.2"
      else
        echo "missing: the playwright package ($python -m pip install playwright==1.65.2)" >&2
      fi ;;
  esac
done
