#!/bin/sh
# The order used for the recorded run: both lr x wd grids, the weight-split trajectories, then the rest.
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python experiments/timing_law/run.py --groups grid
python experiments/timing_law/trajectories.py
python experiments/timing_law/run.py
