/**
 * What carrying a fan-in's parent results costs is bounded by the settings, not by what the parents
 * returned: inline with the step's message up to INLINE_PARENTS_BYTES (decided by
 * workflow_released_parents, migration 0021). Real Postgres and Redis.
 */
import { recordOutcomes } from '../../services/core/tasks/attempt-store';
import type { StepSpec } from '../../services/core/workflows/workflow';
import { INLINE_PARENTS_BYTES } from '../../services/core/workflows/queued-here';
import { createWorkflow } from '../../services/core/workflows/workflow-store';
import { createStack, silentLog, Stack } from '../support/stack';

const TENANT = 'default';
let stack: Stack;

afterEach(async () => {
  await stack?.close();
});

function step(key: string, depends_on: string[] = [], type = 'padded'): StepSpec {
  return { key, type, payload: { key }, priority: 'default', max_retries: 0, retry: null, timeout_ms: null, depends_on };
}

async function submit(steps: StepSpec[]) {
  const out = await createWorkflow({ pool: stack.pool, queue: stack.queue, log: silentLog }, TENANT, { name: 'fan-in', on_failure: 'continue', steps }, null);
  if (out.kind !== 'created') throw new Error(out.kind);
  return out;
}

it('a fan-in whose parents’ results add up past the jsonb maximum: its last parent’s success is recorded', async () => {
  // 4,100 parents of 64 KiB: 262 MB of results (compressible, so quick to write). Building the
  // object of all of them in the outcome statement failed (54000) on every try.
  stack = await createStack();
  const n = 4100;
  const parents = Array.from({ length: n }, (_, i) => step(`p${i}`));
  const wf = await submit([...parents, step('sink', parents.map((p) => p.key))]);
  const ids = wf.steps.slice(0, n).map((s) => s.task_id);
  const ok = (id: string, result: string | null = null) => ({
    id, token: `${id}:t`, attempt: 1, workerId: 'w1', startedAtMs: Date.now(), durationMs: 1, error: null, dead: false, delayMs: 0, step: true, result,
  });
  for (let i = 0; i < n - 1; i += 500) await recordOutcomes(stack.pool, ids.slice(i, Math.min(i + 500, n - 1)).map((id) => ok(id)));
  await stack.pool.query(`UPDATE tasks SET result = jsonb_build_object('s', repeat('x', 65500)) WHERE id = ANY($1::uuid[])`, [ids.slice(0, n - 1)]);

  const last = await recordOutcomes(stack.pool, [ok(ids[n - 1]!, JSON.stringify({ s: 'x'.repeat(65500) }))]);
  expect(last.applied).toEqual(new Set([ids[n - 1]]));
  // Released, without its parents inline: its worker reads them.
  expect(last.released.map((r) => [r.stepKey, r.parentsJson])).toEqual([['sink', undefined]]);
});

it('inline parents: exactly up to the limit, counted as the object’s JSON text; past it, none', async () => {
  stack = await createStack();
  const wf = await submit([step('left'), step('right'), step('load', ['left', 'right'])]);
  const [left, , load] = wf.steps.map((s) => s.task_id);
  const parents = { left: { s: 'é'.repeat(10), n: [1, 2.5] }, right: null };
  await stack.pool.query(`UPDATE tasks SET result = $2::jsonb WHERE id = $1`, [left, JSON.stringify(parents.left)]);
  // The size of the text Postgres prints for the object (keys in any order: the same size).
  const { rows } = await stack.pool.query<{ text: string }>(`SELECT $1::jsonb::text AS text`, [JSON.stringify(parents)]);
  const bytes = Buffer.byteLength(rows[0]!.text);
  const inline = async (max: number) => {
    const { rows } = await stack.pool.query<{ parents_json: string | null }>(`SELECT parents_json FROM workflow_released_parents(ARRAY[$1::uuid], $2)`, [load, max]);
    return rows.map((r) => (r.parents_json === null ? null : { bytes: Buffer.byteLength(r.parents_json), parents: JSON.parse(r.parents_json) as unknown }));
  };
  expect(await inline(bytes)).toEqual([{ bytes, parents }]);
  expect(await inline(bytes - 1)).toEqual([null]);
  expect(await inline(INLINE_PARENTS_BYTES)).toEqual([{ bytes, parents }]);
});
