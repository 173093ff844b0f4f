/** The contract helper itself: it must fail on drift, or the contract test proves nothing. */
import { expectContract } from '../support/contract';

const TASK = {
  id: '01a22612-3814-77a3-b56a-d007e5a4999a',
  tenant: 'default',
  type: 'noop',
  priority: 'default',
  payload: {},
  status: 'queued',
  attempts: 0,
  max_retries: 3,
  idempotency_key: null,
  last_error: null,
  next_attempt_at: null,
  created_at: '2026-12-05T10:00:00.000Z',
  updated_at: '2026-12-05T10:00:00.000Z',
  started_at: null,
  finished_at: null,
  cancel_requested_at: null,
  retry: null,
  timeout_ms: null,
  result: null,
  run_at: null,
  schedule: null,
  scheduled_for: null,
  workflow_id: null,
  step_key: null,
};
const json = { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r1' };
const created = { ...json, location: `/tasks/${TASK.id}` };
const problem = (status: number, extra: Record<string, unknown> = {}) => JSON.stringify({ type: 'urn:task-scheduler:problem:x', title: 'X', status, detail: 'x', ...extra });

it('accepts what the document describes', () => {
  expect(() => expectContract('POST', '/tasks', { status: 201, headers: created, body: JSON.stringify(TASK) })).not.toThrow();
  expect(() => expectContract('GET', `/tasks/${TASK.id}`, { status: 200, headers: json, body: JSON.stringify({ ...TASK, runs: [] }) })).not.toThrow();
  expect(() => expectContract('GET', '/nothing', { status: 404, headers: { 'content-type': 'application/problem+json' }, body: problem(404) })).not.toThrow();
  expect(() => expectContract('DELETE', '/tasks', { status: 405, headers: { 'content-type': 'application/problem+json', allow: 'GET, HEAD, POST' }, body: problem(405) })).not.toThrow();
  // The HTTP server's own answers come before routing: on a path or a method no route has too.
  expect(() => expectContract('POST', `/tasks/${'a'.repeat(20000)}`, { status: 431, headers: { 'content-type': 'application/problem+json' }, body: problem(431) })).not.toThrow();
  expect(() => expectContract('PUT', '/nothing', { status: 417, headers: { 'content-type': 'application/problem+json' }, body: problem(417) })).not.toThrow();
  // Dot segments are routed as sent (express does not resolve them): /tasks/./batch is no /tasks/batch.
  expect(() => expectContract('POST', '/tasks/./batch', { status: 404, headers: { 'content-type': 'application/problem+json' }, body: problem(404) })).not.toThrow();
});

it.each([
  ['an undocumented field', 'POST', '/tasks', 201, created, { ...TASK, extra: 1 }, /must NOT have additional properties/],
  ['a missing field', 'POST', '/tasks', 201, created, { ...TASK, status: undefined }, /must have required property 'status'/],
  ['a wrong type', 'POST', '/tasks', 201, created, { ...TASK, attempts: '0' }, /attempts must be integer/],
  ['an undocumented status', 'POST', '/tasks', 204, created, TASK, /status 204 is not documented/],
  ['a missing required header', 'POST', '/tasks', 201, json, TASK, /Location is required/],
  ['another media type', 'GET', '/healthz', 200, { 'content-type': 'text/plain' }, { status: 'ok' }, /Content-Type "text\/plain"/],
  ['a problem as plain JSON', 'GET', '/tasks/x', 400, json, JSON.parse(problem(400)), /Content-Type "application\/json"/],
  ['a 401 without its challenge', 'GET', '/tasks/x', 401, { 'content-type': 'application/problem+json' }, JSON.parse(problem(401)), /WWW-Authenticate is required/],
  ['a served path the document lacks', 'GET', '/tasks/x/runs', 200, json, {}, /not in the OpenAPI document/],
])('refuses %s', (_what, method, path, status, headers, body, message) => {
  expect(() => expectContract(method, path, { status, headers: headers as Record<string, string>, body: JSON.stringify(body) })).toThrow(message);
});
