/**
 * The autoscaler's settings: scale to zero (worker.minReplicas 0, KEDA only), the combinations
 * synth refuses, and the dev and prod defaults that keep a floor of workers.
 */
import { checkAutoscaling } from '../../cdk8s/lib/autoscaling-checks';
import type { EnvironmentSettings } from '../../cdk8s/settings';
import { environment, find, synth } from './helpers';

type Overrides = { worker?: Partial<EnvironmentSettings['worker']>; autoscaling?: Partial<EnvironmentSettings['autoscaling']> };

function variant(base: EnvironmentSettings, o: Overrides): EnvironmentSettings {
  return { ...base, worker: { ...base.worker, ...o.worker }, autoscaling: { ...base.autoscaling, ...o.autoscaling } };
}

const scaledObject = (env: EnvironmentSettings) => find(synth(env), 'ScaledObject', 'task-scheduler-worker');

test('dev and prod keep their floor of workers: scale to zero is off by default', () => {
  for (const name of ['dev', 'prod'] as const) {
    const env = environment(name);
    expect(env.worker.minReplicas).toBeGreaterThanOrEqual(1);
    expect(scaledObject(env).spec.minReplicaCount).toBe(env.worker.minReplicas);
  }
});

describe.each(['dev', 'prod'] as const)('%s with worker.minReplicas 0', (name) => {
  const env = variant(environment(name), { worker: { minReplicas: 0 } });
  const so = scaledObject(env);

  test('KEDA may scale the workers to zero and wakes one at the first waiting task', () => {
    expect(so.spec.minReplicaCount).toBe(0);
    expect(so.spec.maxReplicaCount).toBe(env.worker.maxReplicas);
    const depth = so.spec.triggers.find((t: any) => t.name === 'queue-depth');
    // Active above 0 waiting tasks: one task is enough to start a worker.
    expect(depth.metadata).toMatchObject({ activationThreshold: '0', threshold: String(env.autoscaling.tasksPerWorker) });
    expect(depth.metadata.query).toContain('queue_depth_leasable{');
    expect(so.spec.cooldownPeriod).toBe(env.autoscaling.scaleDownStabilizationSeconds);
  });

  test('the last worker stays while a task is leased or waits for a retry, and one wakes for a cron tick or delayed task due soon (only workers run the retry pump, the ticker and the loader)', () => {
    const keep = so.spec.triggers.find((t: any) => t.name === 'leases-and-retries');
    expect(keep).toMatchObject({ metricType: 'AverageValue', metadata: { threshold: '1', activationThreshold: '0' } });
    expect(keep.metadata.query).toMatch(/^clamp_max\(max\(tasks_leased\{.*\}\) \+ sum\(max by \(priority\) \(retry_set_depth\{.*\}\)\) \+ \(count\(min by \(kind\) \(work_next_due_seconds\{.*\}\) < 60\) or on\(\) vector\(0\)\), 1\)$/);
  });

  test('only the floor differs from the default ScaledObject (so the Helm chart switches it with one value)', () => {
    const floor = scaledObject(environment(name));
    expect({ ...so.spec, minReplicaCount: floor.spec.minReplicaCount }).toEqual(floor.spec);
  });
});

describe('refused at synth time', () => {
  test('hpa with scale to zero, naming the setting and the reason', () => {
    const env = variant(environment('prod', 'hpa'), { worker: { minReplicas: 0 } });
    expect(() => synth(env)).toThrow("prod: worker.minReplicas 0 (scale to zero) needs autoscaling.kind 'keda': a plain HPA cannot scale to zero without the alpha HPAScaleToZero feature gate");
  });

  test.each([
    [{ worker: { minReplicas: -1 } }, 'worker.minReplicas must be a whole number ≥ 0 (got -1)'],
    [{ worker: { minReplicas: 3, maxReplicas: 2 } }, 'worker.maxReplicas must be a whole number ≥ 3 (got 2)'],
    [{ worker: { minReplicas: 0, maxReplicas: 0 } }, 'worker.maxReplicas must be a whole number ≥ 1 (got 0)'],
    [{ autoscaling: { tasksPerWorker: 0 } }, 'autoscaling.tasksPerWorker must be a whole number ≥ 1 (got 0)'],
    [{ autoscaling: { targetOldestWaitSeconds: 2.5 } }, 'autoscaling.targetOldestWaitSeconds must be a whole number ≥ 1 (got 2.5)'],
  ] as [Overrides, string][])('%j', (overrides, message) => {
    expect(() => checkAutoscaling(variant(environment('dev'), overrides))).toThrow(`dev: ${message}`);
  });

  test('the defaults pass, and keda with scale to zero passes', () => {
    for (const name of ['dev', 'prod'] as const) {
      expect(() => checkAutoscaling(environment(name))).not.toThrow();
      expect(() => checkAutoscaling(environment(name, 'hpa'))).not.toThrow();
      expect(() => checkAutoscaling(variant(environment(name), { worker: { minReplicas: 0 } }))).not.toThrow();
    }
  });
});
