/**
 * How fast the worker count may move, shared by KEDA's HPA and the plain one: up at once, down only
 * after a look-back window, so a burst's tail does not stop workers that are about to be needed.
 */
import type { EnvironmentSettings } from '../settings';

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
