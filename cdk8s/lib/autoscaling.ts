/**
 * Worker autoscaling on queue depth, one typed choice (EnvironmentSettings.autoscaling.kind):
 * a KEDA ScaledObject with a Prometheus trigger, or an autoscaling/v2 HPA on an External metric
 * plus the prometheus-adapter rule that serves it. Both aim for `tasksPerWorker` waiting tasks per
 * replica, scale up fast and scale down slowly, and the HPA is named like the worker in both cases
 * (KEDA's is named through advanced.horizontalPodAutoscalerConfig.name) so tools find it.
 */
import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { stringify } from 'yaml';
import { ScaledObject } from '../imports/crds';
import type { EnvironmentSettings } from '../settings';
import { ADAPTER_CONFIGMAP, APP, QUEUE_DEPTH_METRIC } from './names';
import { labels } from './pods';

export { ADAPTER_CONFIGMAP, QUEUE_DEPTH_METRIC };

/**
 * Tasks waiting, over all priorities. queue_depth is exported by every api replica (read from
 * Redis, never by workers), so replicas agree and `max by (priority)` removes the duplicates.
 */
export function queueDepthQuery(namespace: string, apiJob: string): string {
  return `sum(max by (priority) (queue_depth{namespace="${namespace}",job="${apiJob}"}))`;
}

/** Scale-up: up to 4 pods or double every 15 s. Scale-down: a quarter a minute after the window. */
export function scalingBehaviour(env: EnvironmentSettings) {
  return {
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: 'Max',
      policies: [
        { type: 'Pods', value: 4, periodSeconds: 15 },
        { type: 'Percent', value: 100, periodSeconds: 15 },
      ],
    },
    scaleDown: {
      stabilizationWindowSeconds: env.autoscaling.scaleDownStabilizationSeconds,
      selectPolicy: 'Max',
      policies: [{ type: 'Percent', value: 25, periodSeconds: 60 }],
    },
  };
}

export class WorkerAutoscaling extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, worker: kplus.Deployment, apiJob: string) {
    super(scope, id);
    const name = `${APP}-worker`;
    const behaviour = scalingBehaviour(env);
    if (env.autoscaling.kind === 'keda') {
      new ScaledObject(this, 'scaled-object', {
        metadata: { name, labels: labels('worker') },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: worker.name },
          minReplicaCount: env.worker.minReplicas,
          maxReplicaCount: env.worker.maxReplicas,
          pollingInterval: env.autoscaling.pollingIntervalSeconds,
          advanced: { horizontalPodAutoscalerConfig: { name, behavior: behaviour } },
          triggers: [
            {
              type: 'prometheus',
              name: 'queue-depth',
              metricType: 'AverageValue',
              metadata: {
                serverAddress: env.autoscaling.prometheusUrl,
                query: queueDepthQuery(env.namespace, apiJob),
                threshold: String(env.autoscaling.tasksPerWorker),
              },
            },
          ],
        },
      });
      return;
    }

    new kplus.HorizontalPodAutoscaler(this, 'hpa', {
      metadata: { name, labels: labels('worker') },
      target: worker,
      minReplicas: env.worker.minReplicas,
      maxReplicas: env.worker.maxReplicas,
      metrics: [
        kplus.Metric.external({
          name: QUEUE_DEPTH_METRIC,
          labelSelector: kplus.LabelSelector.of({ labels: { job: apiJob } }),
          target: kplus.MetricTarget.averageValue(env.autoscaling.tasksPerWorker),
        }),
      ],
      scaleUp: {
        stabilizationWindow: Duration.seconds(0),
        strategy: kplus.ScalingStrategy.MAX_CHANGE,
        policies: [
          { replicas: kplus.Replicas.absolute(4), duration: Duration.seconds(15) },
          { replicas: kplus.Replicas.percent(100), duration: Duration.seconds(15) },
        ],
      },
      scaleDown: {
        stabilizationWindow: Duration.seconds(env.autoscaling.scaleDownStabilizationSeconds),
        strategy: kplus.ScalingStrategy.MAX_CHANGE,
        policies: [{ replicas: kplus.Replicas.percent(25), duration: Duration.seconds(60) }],
      },
    });

    // prometheus-adapter reads this with `--set rules.existing=<name>` (it must live in the
    // adapter's namespace). LabelMatchers carry the HPA's namespace and its selector (job).
    const adapterConfig = {
      externalRules: [
        {
          seriesQuery: `queue_depth{namespace!="",job="${apiJob}"}`,
          resources: { overrides: { namespace: { resource: 'namespace' } } },
          name: { matches: '^queue_depth$', as: QUEUE_DEPTH_METRIC },
          metricsQuery: 'sum(max by (priority) (<<.Series>>{<<.LabelMatchers>>}))',
        },
      ],
    };
    new kplus.k8s.KubeConfigMap(this, 'adapter-rules', {
      metadata: { name: ADAPTER_CONFIGMAP, namespace: env.monitoring.namespace, labels: labels('worker') },
      data: { 'config.yaml': stringify(adapterConfig) },
    });
  }
}
