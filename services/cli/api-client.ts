/** The commands that talk to the API: where it is (--api / TASK_SCHEDULER_URL) and the key (--key / TASK_SCHEDULER_KEY). */
import { TaskSchedulerClient } from '../client';
import { UsageError } from './args';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
export const API_OPTIONS = { api: { type: 'string' }, key: { type: 'string' } } as const;
export const API_USAGE = `API: --api URL or TASK_SCHEDULER_URL (default ${DEFAULT_API_URL}); --key KEY or TASK_SCHEDULER_KEY`;

export function apiClient(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): TaskSchedulerClient {
  const url = typeof values.api === 'string' ? values.api : env.TASK_SCHEDULER_URL || DEFAULT_API_URL;
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // reported below
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new UsageError(`${typeof values.api === 'string' ? '--api' : 'TASK_SCHEDULER_URL'} must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.username || parsed.password) {
    // Not echoed: the password would land in a terminal's scrollback or a CI log.
    throw new UsageError(`${typeof values.api === 'string' ? '--api' : 'TASK_SCHEDULER_URL'} must not carry a user or password (${parsed.origin}); the API key goes in --key or TASK_SCHEDULER_KEY`);
  }
  const key = typeof values.key === 'string' ? values.key : env.TASK_SCHEDULER_KEY || undefined;
  if (key !== undefined && !/^[\x21-\x7e]+$/.test(key)) throw new UsageError(`${typeof values.key === 'string' ? '--key' : 'TASK_SCHEDULER_KEY'} must be an API key (printable characters, no spaces)`);
  // A person waits at the terminal: a few quick retries, never a long wait.
  return new TaskSchedulerClient({ baseUrl: url, apiKey: key, retry: { maxRetries: 3, baseDelayMs: 250, maxDelayMs: 10_000 }, timeoutMs: 60_000 });
}
