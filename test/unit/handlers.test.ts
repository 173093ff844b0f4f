/**
 * Handlers with defaults for their type: withDefaults and HANDLERS_MODULE's `{ handler, retry?,
 * timeoutMs? }` entries hold the defaults to a task's own bounds, refuse bad ones at start-up with
 * the handler and field named, and leave a plain function working as before.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinHandlers, loadHandlersModule, TaskContext, withDefaults } from '../../services/worker/handlers';
import { customHandlers } from '../../services/worker/custom-handlers';

const ctx = (payload: unknown): TaskContext => ({ id: 't', type: 'x', payload, attempt: 1, signal: new AbortController().signal });

describe('withDefaults', () => {
  it('carries the defaults and runs the function', async () => {
    const h = withDefaults(async ({ payload }) => payload, { retry: { backoff: 'fixed', base_ms: 500 }, timeoutMs: 5000 });
    expect(h.retry).toEqual({ backoff: 'fixed', base_ms: 500 });
    expect(h.timeoutMs).toBe(5000);
    await expect(h(ctx({ a: 1 }))).resolves.toEqual({ a: 1 });
  });

  it('leaves the function as it was: one function may serve two types with different defaults', () => {
    const fn = async () => undefined;
    const quick = withDefaults(fn, { timeoutMs: 100 });
    const slow = withDefaults(fn, { timeoutMs: 60_000, retry: { jitter: 'none' } });
    expect([quick.timeoutMs, slow.timeoutMs]).toEqual([100, 60_000]);
    expect(quick.retry).toBeUndefined();
    expect((fn as { timeoutMs?: number }).timeoutMs).toBeUndefined();
  });

  it('carries `parents: false` (a handler that never reads its parents), and nothing for `true`', () => {
    const fn = async () => undefined;
    expect(withDefaults(fn, { parents: false }).parents).toBe(false);
    expect(withDefaults(fn, { parents: true }).parents).toBeUndefined();
    expect(() => withDefaults(fn, { parents: 0 as unknown as boolean })).toThrow('handler defaults: parents must be true or false');
  });

  it('refuses defaults a task could not ask for, naming each field', () => {
    const fn = async () => undefined;
    expect(() => withDefaults(fn, { timeoutMs: 0 })).toThrow('handler defaults: timeoutMs must be an integer between 1 and 86400000');
    expect(() => withDefaults(fn, { timeoutMs: '5000' as unknown as number })).toThrow(/timeoutMs must be an integer/);
    expect(() => withDefaults(fn, { retry: { backoff: 'Fixed' as 'fixed', base_ms: 1.5 } })).toThrow(
      'handler defaults: retry.backoff must be one of exponential, linear, fixed; retry.base_ms must be an integer between 1 and 86400000',
    );
    expect(() => withDefaults(fn, { retry: { base: 100 } as never })).toThrow('retry.base is not a known field');
  });
});

describe('built-in handlers', () => {
  it('all but echo say they never read their parents, so a step of theirs loads none', () => {
    expect(Object.fromEntries(Object.entries(builtinHandlers).map(([name, h]) => [name, h.parents]))).toEqual({
      noop: false, flaky: false, always_fail: false, sleeper: false, echo: undefined,
    });
  });
});

describe('loadHandlersModule', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'handlers-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const moduleWith = (source: string): string => {
    const file = path.join(dir, `m${Math.random().toString(36).slice(2)}.js`);
    writeFileSync(file, source);
    return file;
  };

  it('takes plain functions and { handler, retry, timeoutMs } entries', async () => {
    const file = moduleWith(`exports.handlers = {
      plain: async ({ payload }) => payload,
      tuned: { handler: async () => 'ok', retry: { backoff: 'linear', base_ms: 200 }, timeoutMs: 1500 },
    };`);
    const found = loadHandlersModule(file);
    expect(found.plain!.retry).toBeUndefined();
    await expect(found.plain!(ctx(7))).resolves.toBe(7);
    expect({ retry: found.tuned!.retry, timeoutMs: found.tuned!.timeoutMs }).toEqual({ retry: { backoff: 'linear', base_ms: 200 }, timeoutMs: 1500 });
    await expect(found.tuned!(ctx(null))).resolves.toBe('ok');
  });

  it('takes `parents: false` in an entry or as a plain function\'s own property', () => {
    const file = moduleWith(`const f = async () => 1; f.parents = false;
      exports.handlers = { entry: { handler: async () => 2, parents: false }, prop: f, reads: async () => 3 };`);
    const found = loadHandlersModule(file);
    expect([found.entry!.parents, found.prop!.parents, found.reads!.parents]).toEqual([false, false, undefined]);
  });

  it('refuses bad defaults and unknown options, naming the module, the handler and the field', () => {
    const bad = moduleWith(`exports.handlers = { report: { handler: async () => {}, retry: { jitter: 'half' } } };`);
    expect(() => loadHandlersModule(bad)).toThrow(`HANDLERS_MODULE ${bad}: handler "report": handler defaults: retry.jitter must be one of full, equal, none`);
    const typo = moduleWith(`exports.handlers = { report: { handler: async () => {}, timeout: 5000 } };`);
    expect(() => loadHandlersModule(typo)).toThrow(`handler "report": timeout: not a known option (handler, retry, timeoutMs, parents)`);
    const neither = moduleWith(`exports.handlers = { report: 42 };`);
    expect(() => loadHandlersModule(neither)).toThrow('handler "report" is neither a function nor { handler, retry?, timeoutMs?, parents? }');
    const parents = moduleWith(`exports.handlers = { report: { handler: async () => {}, parents: 'no' } };`);
    expect(() => loadHandlersModule(parents)).toThrow(`HANDLERS_MODULE ${parents}: handler "report": handler defaults: parents must be true or false`);
  });

  it('refuses a handler that would shadow a built-in one, naming it', () => {
    const file = moduleWith(`exports.handlers = { mine: async () => 1, echo: async () => 'not echo' };`);
    expect(() => loadHandlersModule(file)).toThrow(`HANDLERS_MODULE ${file}: handler "echo" would replace the built-in handler of that name`);
    customHandlers.mine = async () => 2;
    try {
      const own = moduleWith(`exports.handlers = { mine: async () => 1 };`);
      expect(() => loadHandlersModule(own)).toThrow(`HANDLERS_MODULE ${own}: handler "mine" would replace the one of that name in custom-handlers.ts`);
    } finally {
      delete customHandlers.mine;
    }
  });

  it('says which setting failed when the module cannot be loaded', () => {
    const missing = path.join(dir, 'nope.js');
    expect(() => loadHandlersModule(missing)).toThrow(`HANDLERS_MODULE ${missing} could not be loaded:`);
    const syntax = moduleWith(`exports.handlers = {`);
    expect(() => loadHandlersModule(syntax)).toThrow(/could not be loaded: .*SyntaxError/);
    const throws = moduleWith(`throw 'no database';`);
    expect(() => loadHandlersModule(throws)).toThrow(`HANDLERS_MODULE ${throws} could not be loaded: no database`);
  });

  it('refuses a handlers export that is not a plain object of handlers', () => {
    const arr = moduleWith(`exports.handlers = [async () => 1];`);
    expect(() => loadHandlersModule(arr)).toThrow(`HANDLERS_MODULE ${arr} must export an object named "handlers"`);
    const map = moduleWith(`exports.handlers = new Map([['a', async () => 1]]);`);
    expect(() => loadHandlersModule(map)).toThrow(`HANDLERS_MODULE ${map} must export an object named "handlers"`);
  });

  it('holds defaults set as properties of a plain function to the same bounds', () => {
    const huge = moduleWith(`const f = async () => 1; f.timeoutMs = 3e9; exports.handlers = { report: f };`);
    expect(() => loadHandlersModule(huge)).toThrow(`HANDLERS_MODULE ${huge}: handler "report": handler defaults: timeoutMs must be an integer between 1 and 86400000`);
    const ok = moduleWith(`const f = async () => 1; f.timeoutMs = 500; f.retry = { backoff: 'fixed', base_ms: 100 }; exports.handlers = { report: f };`);
    const found = loadHandlersModule(ok);
    expect({ retry: found.report!.retry, timeoutMs: found.report!.timeoutMs }).toEqual({ retry: { backoff: 'fixed', base_ms: 100 }, timeoutMs: 500 });
  });
});
