/** Names shared by the constructs and the verify tool (kept free of cdk8s imports, so the tool loads fast). */
export const APP = 'task-scheduler';
/** The external metric the prometheus-adapter rule serves and the HPA reads. */
export const QUEUE_DEPTH_METRIC = 'task_scheduler_queue_depth';
export const ADAPTER_CONFIGMAP = `${APP}-prometheus-adapter`;
