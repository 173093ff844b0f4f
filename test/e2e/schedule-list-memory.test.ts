/**
 * GET /schedules on an API process with a small heap (the prod entrypoint sizes the heap to the
 * container, 192 MiB in a 256 MiB one; here 96 MiB, with data in the same proportion to it): a page of schedules whose tasks carry large payloads (each
 * up to MAX_BODY_BYTES) must not cost what `limit` of them would.
 */
import { AUTH_ENV, TEST_KEY } from '../support/auth';
import { ChildHandle, freePort, killAllChildren, spawnService } from '../support/processes';
import { createWorld, ScheduleWorld } from '../support/schedule-workers';
import { fetch } from '../support/contract';

/** The API's heap; a page of every schedule is about 0.75 of it, which an unbounded page would hold several times over. */
const HEAP_MIB = 96;
const SCHEDULES = 144;
const PAYLOAD_CHARS = 512 * 1024;

let w: ScheduleWorld;
let api: ChildHandle;
let url: string;
beforeAll(async () => {
  w = await createWorld('schedlist', {});
  const task = { type: 'noop', payload: { blob: 'x'.repeat(PAYLOAD_CHARS) }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  await w.pg.query(
    `INSERT INTO schedules (tenant, name, cron, task, paused, next_tick)
     SELECT 'default', 's' || lpad(n::text, 4, '0'), '0 0 1 1 *', $1, true, now() + interval '1 day' FROM generate_series(1, $2) n`,
    [JSON.stringify(task), SCHEDULES],
  );
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  api = await spawnService('dist/services/api/main.js', { ...w.env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` }, { nodeArgs: [`--max-old-space-size=${HEAP_MIB}`] });
}, 120_000);
afterAll(async () => {
  await api?.stop('SIGTERM', 20_000);
  await killAllChildren();
  await w?.pg.end();
  await w?.db.drop();
});

it(`pages through ${SCHEDULES} schedules of a 512 KiB payload at limit=500 on an API with a ${HEAP_MIB} MiB heap, each schedule whole and once`, async () => {
  const names: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await fetch(`${url}/schedules?limit=500${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { schedules: { name: string; task: { payload: { blob: string } } }[]; next_cursor: string | null };
    for (const s of body.schedules) {
      expect(s.task.payload.blob.length).toBe(PAYLOAD_CHARS);
      names.push(s.name);
    }
    cursor = body.next_cursor;
    pages++;
  } while (cursor !== null && pages < 1000);
  expect(names).toEqual(Array.from({ length: SCHEDULES }, (_, i) => `s${String(i + 1).padStart(4, '0')}`));
}, 120_000);
