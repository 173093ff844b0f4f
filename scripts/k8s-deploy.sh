#!/usr/bin/env bash
# The kubectl path, for those who do not use Skaffold: apply the generated manifests, wait for the
# migrator Job, then for the api and worker rollouts.
#
#   scripts/k8s-deploy.sh dev    build the three images, load them into kind, apply
#                                charts/manifests/dev.yaml, restart the Deployments onto the new
#                                images (the dev tag does not change), wait
#   scripts/k8s-deploy.sh prod   apply charts/manifests/prod.yaml (images come from the registry
#                                named in cdk8s/settings.ts; the credentials Secret must exist), wait
#
# KUBE_CONTEXT selects the cluster (default: kind-task-scheduler for dev, the current context
# for prod); TIMEOUT bounds each wait (default 300s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENV=${1:-dev}
NS=task-scheduler
TIMEOUT=${TIMEOUT:-300s}
CLUSTER_NAME=${CLUSTER_NAME:-task-scheduler}
log() { printf 'k8s-deploy: %s\n' "$*" >&2; }

case "$ENV" in
  dev) CONTEXT=${KUBE_CONTEXT:-kind-${CLUSTER_NAME}} ;;
  prod) CONTEXT=${KUBE_CONTEXT:-$(kubectl config current-context)} ;;
  *) log "usage: $0 dev|prod"; exit 2 ;;
esac
k() { kubectl --context "$CONTEXT" "$@"; }

log "regenerating manifests (npm run synth)"
npm run --silent synth

if [ "$ENV" = dev ]; then
  for target in api worker migrator; do
    log "building task-scheduler-$target:dev"
    docker build --target "$target" -t "task-scheduler-$target:dev" .
    kind load docker-image "task-scheduler-$target:dev" --name "$CLUSTER_NAME"
  done
  # The dev Job keeps its name; its pod template is immutable, so replace it.
  k --namespace "$NS" delete job --selector app.kubernetes.io/component=migrator --ignore-not-found --wait=true
else
  # Each component's own credentials (docs/security.md); the bootstrap admin key Secret is optional.
  for secret in task-scheduler-api-credentials task-scheduler-worker-credentials task-scheduler-migrator-credentials; do
    k --namespace "$NS" get secret "$secret" >/dev/null 2>&1 || {
      log "error: create Secret $secret in namespace $NS first (see docs/security.md)"
      exit 1
    }
  done
  k --namespace "$NS" get configmap task-scheduler-ca >/dev/null 2>&1 || {
    log "error: create ConfigMap task-scheduler-ca (postgres-ca.crt, redis-ca.crt) in namespace $NS first"
    exit 1
  }
fi

log "applying charts/manifests/$ENV.yaml to $CONTEXT"
k apply -f "charts/manifests/$ENV.yaml"
if [ "$ENV" = dev ]; then
  k --namespace "$NS" rollout restart deployment/task-scheduler-api deployment/task-scheduler-worker
fi

# The Job of this release (its name carries the release), read from the manifests just applied.
job=$(awk '/^kind: Job$/ { found = 1 } found && /^  name: / { print $2; exit }' "charts/manifests/$ENV.yaml")
log "waiting for job/$job"
k --namespace "$NS" wait --for=condition=complete --timeout="$TIMEOUT" "job/$job"
for d in task-scheduler-api task-scheduler-worker; do
  k --namespace "$NS" rollout status "deployment/$d" --timeout="$TIMEOUT"
done
log "deployed; check end to end with: npm run k8s:verify -- --env $ENV"
