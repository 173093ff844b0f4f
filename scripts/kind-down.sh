#!/usr/bin/env bash
# Deletes the kind cluster scripts/kind-up.sh created (and everything in it).
set -euo pipefail
CLUSTER_NAME=${CLUSTER_NAME:-task-scheduler}
kind delete cluster --name "$CLUSTER_NAME"
