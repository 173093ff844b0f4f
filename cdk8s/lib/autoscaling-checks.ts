/**
 * Synth-time checks of an environment's autoscaling settings: a combination the cluster would
 * refuse, or silently run badly, fails `npm run synth` with the setting named instead.
 */
import type { EnvironmentSettings } from '../settings';

export function checkAutoscaling(env: EnvironmentSettings): void {
  const { minReplicas, maxReplicas } = env.worker;
  const a = env.autoscaling;
  const problems: string[] = [];
  const wholeAtLeast = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) problems.push(`${name} must be a whole number ≥ ${min} (got ${value})`);
  };
  wholeAtLeast('worker.minReplicas', minReplicas, 0);
  wholeAtLeast('worker.maxReplicas', maxReplicas, Math.max(1, minReplicas));
  wholeAtLeast('autoscaling.tasksPerWorker', a.tasksPerWorker, 1);
  wholeAtLeast('autoscaling.targetOldestWaitSeconds', a.targetOldestWaitSeconds, 1);
  // A plain HPA never goes below one replica unless the cluster enables the alpha HPAScaleToZero gate.
  if (a.kind === 'hpa' && minReplicas === 0) {
    problems.push("worker.minReplicas 0 (scale to zero) needs autoscaling.kind 'keda': a plain HPA cannot scale to zero without the alpha HPAScaleToZero feature gate");
  }
  if (problems.length > 0) throw new Error(`${env.name}: ${problems.join('; ')}`);
}
