/** `workflows submit|list|get|cancel`: workflows (DAGs of tasks) through the API, scoped to the key's tenant. */
import { randomUUID } from 'node:crypto';
import { ApiError, ConnectionError } from '../client';
import type { NewWorkflow, Workflow, WorkflowListQuery } from '../client';
import { parseTaskBody } from '../api/input/read-json';
import { ProblemError } from '../api/problem';
import { validateWorkflowInput } from '../api/workflows/workflow-input';
import { microsecondTime } from '../core/tasks/task-fields';
import { WORKFLOW_STATUSES } from '../core/workflows/workflow';
import { API_OPTIONS, apiClient } from './api-client';
import { parse, UsageError } from './args';
import type { Io } from './io';
import { json } from './output';
import { readBounded } from './read-input';
import { parseTime } from './task-filter';
import { cursorOption, parseCount } from './tasks-command';
import { workflowCreated, workflowDetail, workflowTable } from './workflow-output';

/** The deepest payload any API may take (MAX_PAYLOAD_DEPTH's bound): the API checks its own setting. */
const MAX_PAYLOAD_DEPTH = 512;
/** The largest body any API may take (MAX_WORKFLOW_BODY_BYTES' bound): a larger file is refused unread. */
const MAX_WORKFLOW_FILE_BYTES = 64 * 1048576;

export const WORKFLOWS_USAGE = `workflows submit FILE|- [--idempotency-key K] [--json]      (FILE: the POST /workflows body as JSON)
  workflows list [--status S] [--name N] [--created-after TIME] [--created-before TIME] [--limit N] [--cursor C] [--json]
  workflows get ID [--json]
  workflows cancel ID [--json]`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LIST_MAX = 100_000;
const PAGE_MAX = 500;

function workflowId(text: string): string {
  if (!UUID.test(text)) throw new UsageError(`ID must be a workflow id (a UUID), got ${JSON.stringify(text)}`);
  return text.toLowerCase();
}

/** The file (or stdin) as a workflow, checked by the API's own validator first: a bad one exits 2 and nothing is sent. */
async function readWorkflow(source: string, key: string | undefined, io: Io): Promise<NewWorkflow> {
  const raw = await readBounded(source, MAX_WORKFLOW_FILE_BYTES, io, 'a workflow');
  const where = source === '-' ? 'stdin' : source;
  try {
    JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new UsageError(`${where} is not JSON: ${(err as Error).message}`);
  }
  try {
    // Read as the API reads it: a payload it could not hold exactly (1e400, an integer past 2^53,
    // NUL) is refused here, where JSON.parse would turn it into null or another number and send that.
    const body = parseTaskBody(raw, { maxPayloadDepth: MAX_PAYLOAD_DEPTH, payloadAt: 2 });
    validateWorkflowInput(body, key, 0);
    return body as NewWorkflow;
  } catch (err) {
    if (err instanceof ProblemError) throw new UsageError(`${where}: ${err.message}`);
    throw err;
  }
}

function listQuery(v: Record<string, string | boolean | undefined>): WorkflowListQuery {
  const q: WorkflowListQuery = {};
  if (typeof v.status === 'string') {
    const items = v.status.split(',').map((s) => s.trim());
    const bad = items.find((s) => !(WORKFLOW_STATUSES as readonly string[]).includes(s));
    if (bad !== undefined) throw new UsageError(`--status must be one of ${WORKFLOW_STATUSES.join(', ')} (or a comma-separated list), got ${JSON.stringify(bad)}`);
    q.status = [...new Set(items)].join(',');
  }
  if (typeof v.name === 'string') {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(v.name)) throw new UsageError(`--name must be a workflow name (1-200 letters, digits, . _ : - starting with a letter or digit), got ${JSON.stringify(v.name)}`);
    q.name = v.name;
  }
  if (typeof v['created-after'] === 'string') q.created_after = parseTime(v['created-after'], '--created-after');
  if (typeof v['created-before'] === 'string') q.created_before = parseTime(v['created-before'], '--created-before');
  // As tasks list and dlq refuse it: the API would answer an empty list, as if none matched.
  if (q.created_after && q.created_before && microsecondTime(q.created_after, 'down') >= microsecondTime(q.created_before, 'up')) {
    throw new UsageError('--created-after must be earlier than --created-before');
  }
  return q;
}

export async function workflowsCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const byId = { min: 1, max: 1, names: 'the workflow ID' };
  switch (sub) {
    case 'submit': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, 'idempotency-key': { type: 'string' }, json: { type: 'boolean' } }, { min: 1, max: 1, names: 'the workflow FILE (or - for stdin)' });
      const given = typeof values['idempotency-key'] === 'string' ? values['idempotency-key'] : undefined;
      const client = apiClient(values, env);
      const body = await readWorkflow(positionals[0]!, given, io);
      const key = given ?? `cli-${randomUUID()}`;
      let submitted;
      try {
        submitted = await client.submitWorkflow(body, { idempotencyKey: key });
      } catch (err) {
        // No answer, or a failure after the API may have acted: the workflow may exist. Run again
        // without the key, the CLI would make a second one; with it, the API answers with the first.
        if (given === undefined && (err instanceof ConnectionError || (err instanceof ApiError && err.status >= 500))) {
          err.message += `; it may have been created: run again with --idempotency-key ${key} to submit it at most once`;
        }
        throw err;
      }
      io.out(values.json ? json({ workflow: submitted.workflow, steps: submitted.steps }) : workflowCreated(submitted));
      return 0;
    }
    case 'list': {
      const options = { ...API_OPTIONS, status: { type: 'string' }, name: { type: 'string' }, 'created-after': { type: 'string' }, 'created-before': { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } } as const;
      const { values } = parse(rest, options, { min: 0, max: 0, names: '' });
      const query = listQuery(values);
      const limit = parseCount(values.limit, '--limit', 50, LIST_MAX);
      let cursor = cursorOption(values.cursor);
      const client = apiClient(values, env);
      const workflows: Workflow[] = [];
      let next: string | null = null;
      // Each page asks for no more than is still wanted, so next_cursor resumes right after the last one shown.
      for (;;) {
        const page = await client.listWorkflowsPage({ ...query, limit: Math.min(PAGE_MAX, limit - workflows.length), cursor });
        workflows.push(...page.workflows);
        next = page.next_cursor;
        if (next === null || workflows.length >= limit) break;
        cursor = next;
      }
      if (values.json) io.out(json({ workflows, next_cursor: next }));
      else {
        io.out(workflowTable(workflows));
        if (next !== null) io.err(`more workflows: add --cursor ${next}\n`);
      }
      return 0;
    }
    case 'get': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, byId);
      const d = await apiClient(values, env).getWorkflow(workflowId(positionals[0]!));
      io.out(values.json ? json(d) : workflowDetail(d));
      return 0;
    }
    case 'cancel': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, byId);
      const c = await apiClient(values, env).cancelWorkflow(workflowId(positionals[0]!));
      io.out(values.json ? json(c) : `${c.workflow.id} ${c.workflow.status}: ${c.cancelled} step(s) cancelled, ${c.cancelling} running step(s) asked to stop\n`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'workflows needs a subcommand: submit, list, get or cancel' : `unknown workflows subcommand ${JSON.stringify(sub)}`);
  }
}
