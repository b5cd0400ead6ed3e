#!/usr/bin/env bash
# The demo on the local cluster (already up): the iris pipeline from Dataset to a promoted model.
set -euo pipefail
state_dir=${1:-.localcluster}
exec mlops-operator demo --state-dir "$state_dir"
