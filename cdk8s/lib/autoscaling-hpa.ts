/**
 * The `hpa` kind: a plain autoscaling/v2 HPA on two External metrics (queue depth, oldest wait),
 * and the prometheus-adapter rules that serve them from the same PromQL KEDA would run. The HPA
 * takes the larger of the two replica counts. It cannot scale to zero (checkAutoscaling refuses).
 */
import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { stringify } from 'yaml';
import type { EnvironmentSettings } from '../settings';
import { scalingBehaviour } from './autoscaling-behaviour';
import { oldestWaitQuery, queueDepthQuery, type OldestWaitParams } from './autoscaling-queries';
import { ADAPTER_CONFIGMAP, APP, OLDEST_WAIT_METRIC, QUEUE_DEPTH_METRIC } from './names';
import { labels } from './pods';

type Behaviour = ReturnType<typeof scalingBehaviour>['scaleUp'];

/** scalingBehaviour in cdk8s-plus's terms, so both kinds move at the same pace. */
function scalingRules(b: Behaviour): kplus.ScalingRules {
  return {
    stabilizationWindow: Duration.seconds(b.stabilizationWindowSeconds),
    strategy: kplus.ScalingStrategy.MAX_CHANGE,
    policies: b.policies.map((p) => ({
      replicas: p.type === 'Pods' ? kplus.Replicas.absolute(p.value) : kplus.Replicas.percent(p.value),
      duration: Duration.seconds(p.periodSeconds),
    })),
  };
}

export class WorkerHpa extends Construct {
  constructor(scope: Construct, id: string, env: EnvironmentSettings, worker: kplus.Deployment, apiJob: string, params: OldestWaitParams) {
    super(scope, id);
    const name = `${APP}-worker`;
    const behaviour = scalingBehaviour(env);
    const selector = kplus.LabelSelector.of({ labels: { job: apiJob } });
    new kplus.HorizontalPodAutoscaler(this, 'hpa', {
      metadata: { name, labels: labels('worker') },
      target: worker,
      minReplicas: env.worker.minReplicas,
      maxReplicas: env.worker.maxReplicas,
      metrics: [
        // desired = ceil(waiting / tasksPerWorker)
        kplus.Metric.external({ name: QUEUE_DEPTH_METRIC, labelSelector: selector, target: kplus.MetricTarget.averageValue(env.autoscaling.tasksPerWorker) }),
        // desired = ceil(ready workers × oldest wait / target)
        kplus.Metric.external({ name: OLDEST_WAIT_METRIC, labelSelector: selector, target: kplus.MetricTarget.value(params.targetOldestWaitSeconds) }),
      ],
      scaleUp: scalingRules(behaviour.scaleUp),
      scaleDown: scalingRules(behaviour.scaleDown),
    });

    // prometheus-adapter reads this with `--set rules.existing=<name>` (it must live in the
    // adapter's namespace). LabelMatchers carry the HPA's namespace and its selector (job).
    const matchers = '<<.LabelMatchers>>';
    const rule = (series: string, as: string, metricsQuery: string) => ({
      seriesQuery: `${series}{namespace!="",job="${apiJob}"}`,
      resources: { overrides: { namespace: { resource: 'namespace' } } },
      name: { matches: `^${series}$`, as },
      metricsQuery,
    });
    const adapterConfig = {
      externalRules: [
        rule('queue_depth', QUEUE_DEPTH_METRIC, queueDepthQuery(matchers)),
        rule('queue_oldest_task_age_seconds', OLDEST_WAIT_METRIC, oldestWaitQuery(matchers, params)),
      ],
    };
    new kplus.k8s.KubeConfigMap(this, 'adapter-rules', {
      metadata: { name: ADAPTER_CONFIGMAP, namespace: env.monitoring.namespace, labels: labels('worker') },
      data: { 'config.yaml': stringify(adapterConfig, { lineWidth: 0 }) },
    });
  }
}
