/**
 * Worker autoscaling on queue depth and on the oldest task's wait, one typed choice
 * (EnvironmentSettings.autoscaling.kind): a KEDA ScaledObject with Prometheus triggers, or an
 * autoscaling/v2 HPA on External metrics plus the prometheus-adapter rules that serve them. Both
 * scale up fast and down slowly, and the HPA is named like the worker in both cases (KEDA's is
 * named through advanced.horizontalPodAutoscalerConfig.name) so tools find it.
 */
import type * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { EnvironmentSettings } from '../settings';
import { serviceConfig } from '../sources';
import { checkAutoscaling } from './autoscaling-checks';
import { WorkerHpa } from './autoscaling-hpa';
import { WorkerScaledObject } from './autoscaling-keda';
import type { OldestWaitParams } from './autoscaling-queries';
import { ADAPTER_CONFIGMAP, OLDEST_WAIT_METRIC, QUEUE_DEPTH_METRIC } from './names';

export { ADAPTER_CONFIGMAP, OLDEST_WAIT_METRIC, QUEUE_DEPTH_METRIC };
export { scalingBehaviour } from './autoscaling-behaviour';
export { leasesAndRetriesQuery, oldestWaitQuery, queueDepthQuery } from './autoscaling-queries';

/** The oldest-wait query's parameters: the workers' WORKER_POOL (from their ConfigMap) and the target. */
export function oldestWaitParams(env: EnvironmentSettings): OldestWaitParams {
  return { workerSlots: serviceConfig(env, 'worker').parsed.WORKER_POOL, targetOldestWaitSeconds: env.autoscaling.targetOldestWaitSeconds };
}

export class WorkerAutoscaling extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, worker: kplus.Deployment, apiJob: string) {
    super(scope, id);
    checkAutoscaling(env);
    const params = oldestWaitParams(env);
    if (env.autoscaling.kind === 'keda') new WorkerScaledObject(this, 'keda', env, worker, apiJob, params);
    else new WorkerHpa(this, 'hpa', env, worker, apiJob, params);
  }
}
