/** The package entry `task-scheduler/client`: the typed client of the task-scheduler API. */
export { TaskSchedulerClient } from './client';
export type { ClientOptions, Submitted, SubmittedWorkflow, Changed } from './client';
export { ApiError, ConnectionError, ResponseError } from './errors';
export type { RetryOptions } from './retry-policy';
export type { RetryInfo } from './transport';
export type * from './types';
