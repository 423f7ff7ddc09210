#!/usr/bin/env bash
# Install devinterp 1.3.2 and 2.0.1 for benchmarks/bench_llc.py, each in its own virtual environment beside
# the repository (../devinterp-1.3.2 and ../devinterp-2.0.1), reusing the project's CPU torch so pip does not
# download a CUDA build. Run from the repository root, after the project's venv exists in .venv:
#
#     bash benchmarks/install_devinterp.sh            # both versions
#     bash benchmarks/install_devinterp.sh 2.0.1      # one version
#
# devinterp is never a dependency of slt; the venvs are outside the repository and must not be committed.
# The two versions need separate venvs because they cannot be imported into one interpreter.
set -euo pipefail

if [ ! -x .venv/bin/python ]; then
    echo "run from the repository root, with the project's venv in .venv" >&2
    exit 1
fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(1.3.2 2.0.1)

# The project's site-packages (absolute, so the .pth file works whatever the current directory later is).
project_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pyver=$(.venv/bin/python -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')

for v in "${versions[@]}"; do
    venv=../devinterp-$v
    .venv/bin/python -m venv "$venv"
    # A .pth line appends the project's site-packages AFTER the venv's own: pip sees torch as installed and
    # satisfied, devinterp and its other dependencies go into the separate venv, the project venv is untouched.
    echo "$project_site" > "$venv/lib/$pyver/site-packages/project_torch.pth"
    "$venv/bin/pip" install --quiet "devinterp==$v"
    "$venv/bin/python" - "$v" <<'PY'
import sys
import torch, devinterp
from importlib.metadata import version
print(f"devinterp {version('devinterp')} (wanted {sys.argv[1]}), torch {torch.__version__} from {torch.__file__}")
assert version("devinterp") == sys.argv[1]
PY
done
