#!/usr/bin/env bash
# Creates the local Kubernetes cluster for `skaffold dev -p kind` and installs what the manifests
# rely on: an ingress controller, kube-prometheus-stack (Prometheus Operator CRDs, Prometheus,
# Grafana) and the autoscaler backend (KEDA, or prometheus-adapter for the HPA variant).
# Needs docker, kind, kubectl and helm on PATH. Re-running it is safe (helm upgrade --install).
#
#   scripts/kind-up.sh                        cluster + Traefik + kube-prometheus-stack + KEDA
#   AUTOSCALER=hpa scripts/kind-up.sh         prometheus-adapter instead of KEDA (set
#                                             autoscaling.kind: 'hpa' in cdk8s/settings.ts too)
#   INGRESS_CONTROLLER=none scripts/kind-up.sh   bring your own controller; its IngressClass name
#                                             goes in ingress.className in cdk8s/settings.ts
#
# The ingress is reachable at http://127.0.0.1:${INGRESS_HTTP_PORT} (kind maps it to the
# controller's NodePort 30080). ingress-nginx was retired in March 2026, hence Traefik.
set -euo pipefail

CLUSTER_NAME=${CLUSTER_NAME:-task-scheduler}
INGRESS_HTTP_PORT=${INGRESS_HTTP_PORT:-8088}
INGRESS_CONTROLLER=${INGRESS_CONTROLLER:-traefik}
AUTOSCALER=${AUTOSCALER:-keda}
CONTEXT="kind-${CLUSTER_NAME}"

log() { printf 'kind-up: %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "error: $1 is not on PATH"; exit 1; }; }
for tool in docker kind kubectl helm; do need "$tool"; done

if kind get clusters | grep -qx "$CLUSTER_NAME"; then
  log "cluster $CLUSTER_NAME exists"
else
  log "creating cluster $CLUSTER_NAME (ingress on 127.0.0.1:$INGRESS_HTTP_PORT)"
  kind create cluster --name "$CLUSTER_NAME" --wait 120s --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 30080
        hostPort: ${INGRESS_HTTP_PORT}
        listenAddress: "127.0.0.1"
        protocol: TCP
KIND
fi
kubectl config use-context "$CONTEXT" >/dev/null

helm repo add traefik https://traefik.github.io/charts --force-update >/dev/null
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
helm repo update >/dev/null

case "$INGRESS_CONTROLLER" in
  traefik)
    log "installing Traefik (IngressClass traefik, NodePort 30080)"
    helm upgrade --install traefik traefik/traefik \
      --kube-context "$CONTEXT" --namespace traefik --create-namespace \
      ${TRAEFIK_CHART_VERSION:+--version "$TRAEFIK_CHART_VERSION"} \
      --set service.type=NodePort \
      --set ports.web.nodePort=30080 \
      --set ingressClass.enabled=true \
      --set ingressClass.name=traefik \
      --set ingressClass.isDefaultClass=false \
      --wait --timeout 5m
    ;;
  none) log "no ingress controller installed (INGRESS_CONTROLLER=none)" ;;
  *) log "error: INGRESS_CONTROLLER must be traefik or none"; exit 1 ;;
esac

log "installing kube-prometheus-stack (release label: kube-prometheus-stack)"
helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
  --kube-context "$CONTEXT" --namespace monitoring --create-namespace \
  ${KPS_CHART_VERSION:+--version "$KPS_CHART_VERSION"} \
  --set grafana.sidecar.dashboards.enabled=true \
  --set grafana.sidecar.dashboards.label=grafana_dashboard \
  --set grafana.sidecar.dashboards.labelValue=1 \
  --set grafana.sidecar.dashboards.searchNamespace=ALL \
  --set prometheus.prometheusSpec.scrapeInterval=15s \
  --set alertmanager.enabled=false \
  --wait --timeout 10m

case "$AUTOSCALER" in
  keda)
    log "installing KEDA"
    helm upgrade --install keda kedacore/keda \
      --kube-context "$CONTEXT" --namespace keda --create-namespace \
      ${KEDA_CHART_VERSION:+--version "$KEDA_CHART_VERSION"} \
      --wait --timeout 5m
    ;;
  hpa)
    # Reads its rules from the ConfigMap the manifests create (task-scheduler-prometheus-adapter);
    # its pod starts once that exists. KEDA and prometheus-adapter cannot both serve external metrics.
    log "installing prometheus-adapter (rules from ConfigMap task-scheduler-prometheus-adapter)"
    helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
      --kube-context "$CONTEXT" --namespace monitoring \
      ${ADAPTER_CHART_VERSION:+--version "$ADAPTER_CHART_VERSION"} \
      --set prometheus.url=http://kube-prometheus-stack-prometheus.monitoring.svc \
      --set prometheus.port=9090 \
      --set rules.existing=task-scheduler-prometheus-adapter
    ;;
  *) log "error: AUTOSCALER must be keda or hpa"; exit 1 ;;
esac

log "ready: context $CONTEXT; next: skaffold dev -p kind   (or scripts/k8s-deploy.sh dev)"
