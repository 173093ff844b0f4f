/** Names shared by the constructs and the verify tool (kept free of cdk8s imports, so the tool loads fast). */
export const APP = 'task-scheduler';
/** The external metrics the prometheus-adapter rules serve and the `hpa` kind's HPA reads. */
export const QUEUE_DEPTH_METRIC = 'task_scheduler_queue_depth';
export const OLDEST_WAIT_METRIC = 'task_scheduler_queue_oldest_wait';
export const ADAPTER_CONFIGMAP = `${APP}-prometheus-adapter`;
/**
 * The ScaledObject's triggers, in order. KEDA names the metric of trigger i `s<i>-prometheus`, so
 * the verify tool finds each trigger's value by its index.
 */
export const KEDA_TRIGGERS = ['queue-depth', 'oldest-wait', 'leases-and-retries'] as const;
