/**
 * values.schema.json of the Helm chart: Helm checks values against it before rendering, so what
 * checkAutoscaling refuses at synth time is refused at `helm install` too (the templates only
 * substitute values and cannot fail). It covers the autoscaling values; the rest stay free-form.
 */
const wholeAtLeast = (minimum: number, description: string) => ({ type: 'integer', minimum, description });

export function valuesSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
      worker: {
        type: 'object',
        properties: {
          minReplicas: wholeAtLeast(0, 'Fewest workers; 0 scales to zero while no task waits, runs or waits for a retry (autoscaling.kind keda only).'),
          maxReplicas: wholeAtLeast(1, 'Most workers.'),
        },
      },
      autoscaling: {
        type: 'object',
        properties: {
          kind: { enum: ['keda', 'hpa'], description: 'keda: a ScaledObject (needs KEDA); hpa: an HPA on External metrics (needs prometheus-adapter).' },
          tasksPerWorker: wholeAtLeast(1, 'Waiting tasks per worker the autoscaler aims for.'),
          targetOldestWaitSeconds: wholeAtLeast(1, "The oldest waiting task's age above which workers are added in proportion."),
          prometheusUrl: { type: 'string' },
        },
      },
    },
    // A plain HPA cannot scale to zero (the alpha HPAScaleToZero gate aside).
    if: { properties: { autoscaling: { properties: { kind: { const: 'hpa' } } } } },
    then: { properties: { worker: { properties: { minReplicas: wholeAtLeast(1, 'autoscaling.kind hpa cannot scale to zero: use keda for worker.minReplicas 0.') } } } },
  };
}
