/**
 * The `keda` kind: a ScaledObject whose triggers KEDA turns into the metrics of the HPA it owns.
 * The HPA takes the largest replica count any trigger asks for. The shape is the same for every
 * replica floor, so the Helm chart switches scale to zero with `worker.minReplicas` alone: the
 * activation thresholds, the cooldown and the leases-and-retries trigger only act at a floor of 0.
 */
import type * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ScaledObject } from '../imports/crds';
import type { EnvironmentSettings } from '../settings';
import { scalingBehaviour } from './autoscaling-behaviour';
import { apiSelector, leasesAndRetriesQuery, oldestWaitQuery, queueDepthQuery, type OldestWaitParams } from './autoscaling-queries';
import { APP, KEDA_TRIGGERS } from './names';
import { labels } from './pods';

type TriggerName = (typeof KEDA_TRIGGERS)[number];

export class WorkerScaledObject extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, worker: kplus.Deployment, apiJob: string, params: OldestWaitParams) {
    super(scope, id);
    const name = `${APP}-worker`;
    const selector = apiSelector(env.namespace, apiJob);
    // activationThreshold: KEDA wakes a worker from zero when a trigger's value exceeds it (here:
    // any value above 0, i.e. one waiting task). Above zero replicas only the HPA's targets count.
    const trigger = (triggerName: TriggerName, metricType: 'AverageValue' | 'Value', query: string, threshold: number) => ({
      type: 'prometheus',
      name: triggerName,
      metricType,
      metadata: { serverAddress: env.autoscaling.prometheusUrl, query, threshold: String(threshold), activationThreshold: '0' },
    });
    const triggers = [
      // desired = ceil(waiting / tasksPerWorker)
      trigger('queue-depth', 'AverageValue', queueDepthQuery(selector), env.autoscaling.tasksPerWorker),
      // desired = ceil(ready workers × oldest wait / target)
      trigger('oldest-wait', 'Value', oldestWaitQuery(selector, params), params.targetOldestWaitSeconds),
      // desired = 1 while a task is leased or waits for a retry: keeps the last worker at a floor of 0.
      trigger('leases-and-retries', 'AverageValue', leasesAndRetriesQuery(selector), 1),
    ];
    new ScaledObject(this, 'scaled-object', {
      metadata: { name, labels: labels('worker') },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: worker.name },
        minReplicaCount: env.worker.minReplicas,
        maxReplicaCount: env.worker.maxReplicas,
        pollingInterval: env.autoscaling.pollingIntervalSeconds,
        // From the last active trigger to zero replicas: the scale-down window, as from N to N − 1.
        cooldownPeriod: env.autoscaling.scaleDownStabilizationSeconds,
        advanced: { horizontalPodAutoscalerConfig: { name, behavior: scalingBehaviour(env) } },
        triggers,
      },
    });
  }
}
