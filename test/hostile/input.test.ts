/**
 * Input the service cannot store exactly is refused with 400 naming the field, on both the fast
 * path and express's (compressed bodies), and in a batch only the task that holds it fails;
 * input it can store comes back exactly as sent.
 */
import { gzipSync } from 'node:zlib';
import { stackWithApi } from '../support/stack';

const fx = stackWithApi();

const tasks = async () => (await fx.stack.pool.query('SELECT count(*)::int AS n FROM tasks')).rows[0].n as number;

function post(path: string, text: string | Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${fx.api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text });
}

async function fieldsOf(res: Response, status = 400): Promise<string[]> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return ((await res.json()) as { errors: { field: string }[] }).errors.map((e) => e.field);
}

describe.each([
  ['the fast path', (t: string) => post('/tasks', t)],
  ['a gzip body (express)', (t: string) => post('/tasks', gzipSync(Buffer.from(t)), { 'content-encoding': 'gzip' })],
])('POST /tasks through %s', (_path, send) => {
  it.each([
    ['a lone surrogate in a payload string', '{"type":"noop","payload":{"s":"\\ud800"}}', 'payload.s'],
    ['a lone surrogate in a payload key', '{"type":"noop","payload":{"\\udc00":1}}', 'payload'],
    ['a payload nested 5,000 deep', `{"type":"noop","payload":${'['.repeat(5000)}${']'.repeat(5000)}}`, 'payload[0][0][0][0][0][0][0][0][0][0][0]…'],
    ['1e400', '{"type":"noop","payload":{"n":1e400}}', 'payload.n'],
    ['an integer above 2^53', '{"type":"noop","payload":{"n":9007199254740993}}', 'payload.n'],
  ])('refuses %s with 400 and stores nothing', async (_what, text, field) => {
    const before = await tasks();
    expect(await fieldsOf(await send(text))).toEqual([field]);
    expect(await tasks()).toBe(before);
  });

  it('stores the text "\\\\u0000" and other storable values exactly as sent', async () => {
    const text = '{"type":"noop","payload":{"s":"\\\\u0000","big":9007199254740992,"f":0.1,"e":"\\ud83d\\ude00","x":1.5e300}}';
    const res = await send(text);
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const { payload } = (await (await fetch(`${fx.api.url}/tasks/${id}`)).json()) as { payload: unknown };
    expect(payload).toEqual(JSON.parse(text).payload);
    expect((payload as { s: string }).s).toBe('\\u0000');
    const stored = await fx.stack.pool.query("SELECT payload->>'s' AS s, (payload->>'big')::numeric::text AS big FROM tasks WHERE id = $1", [id]);
    expect(stored.rows[0]).toEqual({ s: '\\u0000', big: '9007199254740992' });
  });
});

it('refuses bytes that are not UTF-8, and other charsets', async () => {
  expect(await fieldsOf(await post('/tasks', Buffer.from([...Buffer.from('{"type":"noop","payload":"'), 0xc3, 0x28, ...Buffer.from('"}')])))).toEqual(['(body)']);
  expect(await fieldsOf(await post('/tasks', '{"type":"noop"}', { 'content-type': 'application/json; charset=latin1' }), 415)).toEqual(['Content-Type']);
});

it('in a batch, each unstorable task gets its own 400 and its neighbours are created', async () => {
  const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
  const text = `{"tasks":[{"type":"noop","payload":{"i":0}},{"type":"noop","payload":{"s":"\\ud800"}},{"type":"noop","payload":${deep}},{"type":"noop","payload":{"n":1e400}},{"type":"noop","payload":{"\\udc00":1}},{"type":"noop","payload":{"i":5}}]}`;
  const before = await tasks();
  const res = await post('/tasks/batch', text);
  expect(res.status).toBe(200);
  const { results } = (await res.json()) as { results: { status: number; error?: { errors: { field: string }[] } }[] };
  expect(results.map((r) => r.status)).toEqual([201, 400, 400, 400, 400, 201]);
  expect(results[1]!.error!.errors[0]!.field).toBe('tasks[1].payload.s');
  expect(results[3]!.error!.errors[0]!.field).toBe('tasks[3].payload.n');
  expect(await tasks()).toBe(before + 2);
});

describe('a body with 100,000 unknown fields', () => {
  // Listed in full, the answer was 9 MB for a 1 MB body, and 40 such requests at once killed an
  // api with a 96 MB heap (the answers, not the bodies, ran it out of memory).
  const unknown = `{${Array.from({ length: 100_000 }, (_, i) => `"${i.toString(36)}":0`).join(',')}}`;
  it.each([
    ['POST /tasks', '/tasks', unknown],
    ['a batch task', '/tasks/batch', `{"tasks":[${unknown}]}`],
    ['POST /tasks/cancel', '/tasks/cancel', unknown],
    ['POST /schedules', '/schedules', unknown],
  ])('%s: gets a 400 that lists 20 problems, the last saying how many more', async (_what, path, text) => {
    const res = await post(path, text);
    const answer = (await res.json()) as { status?: number; errors?: { field: string; message: string }[]; results?: { status: number; error: { errors: { field: string; message: string }[] } }[] };
    const problem = answer.results ? answer.results[0]!.error : answer;
    expect(answer.results?.[0]?.status ?? res.status).toBe(400);
    expect(problem.errors).toHaveLength(20);
    expect(problem.errors![19]!.message).toMatch(/^and \d+ more problems$/);
    expect(JSON.stringify(answer).length).toBeLessThan(4096);
  });
});
