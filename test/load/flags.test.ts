/** The load generator's flags: Go names and syntax, defaults, the remainder rule, and every error naming its flag. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FLAGS, HelpRequested, parseDuration, parseFlags, redactUrl, usage, UsageError } from '../../services/load/flags';

const parse = (...argv: string[]) => parseFlags(argv, {});

function usageError(argv: string[]): string {
  try {
    parseFlags(argv, {});
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
}

describe('defaults', () => {
  it('match the Go tool', () => {
    expect(parse()).toEqual({
      n: 1000,
      workers: 8,
      taskMix: { noop: 80, flaky: 10, fail: 5, sleep: 5 },
      priorityMix: { critical: 10, high: 20, default: 50, low: 20 },
      sleepMs: 1000,
      flakyAttempts: 1,
      url: 'http://localhost:8080',
      rate: null,
      durationMs: null,
      batch: null,
      idempotency: false,
      wait: false,
      json: false,
      report: null,
      apiKey: '',
      timeoutMs: 600_000,
      slots: null,
      seed: 1,
    });
  });

  it('-api-key defaults to API_KEY', () => {
    expect(parseFlags([], { API_KEY: 'tsk_env' }).apiKey).toBe('tsk_env');
    expect(parseFlags(['-api-key', 'tsk_flag'], { API_KEY: 'tsk_env' }).apiKey).toBe('tsk_flag');
  });

  it('-pg is gone, and says where the results come from instead', () => {
    expect(() => parseFlags(['-pg', 'postgres://a@b/c'], {})).toThrow(/flag -pg is gone: the results are read through the API \(GET \/tasks\)/);
  });

  it('-duration without -n means unlimited; with -n both limits apply', () => {
    expect(parse('-duration', '30s')).toMatchObject({ n: null, durationMs: 30_000 });
    expect(parse('-duration', '30s', '-n', '50')).toMatchObject({ n: 50, durationMs: 30_000 });
  });
});

describe('syntax', () => {
  it('accepts -flag value, -flag=value, --flag value and --flag=value', () => {
    const o = parse('-n', '5', '-w=3', '--sleep-ms', '20', '--flaky-attempts=2', '-url', 'http://127.0.0.1:9/', '-rate', '12.5', '-batch', '50', '-slots', '16', '-seed', '7');
    expect(o).toMatchObject({ n: 5, workers: 3, sleepMs: 20, flakyAttempts: 2, url: 'http://127.0.0.1:9', rate: 12.5, batch: 50, slots: 16, seed: 7 });
  });

  it('boolean flags take no value, or =true / =false', () => {
    expect(parse('-wait', '-json', '-idempotency')).toMatchObject({ wait: true, json: true, idempotency: true });
    expect(parse('-wait=false', '--json=true', '-idempotency=0')).toMatchObject({ wait: false, json: true, idempotency: false });
  });

  it('-report and -timeout', () => {
    expect(parse('-report', 'out.html', '-timeout', '1m30s')).toMatchObject({ report: 'out.html', timeoutMs: 90_000 });
  });

  it('-h and -help ask for help; the usage names every flag with its default', () => {
    expect(() => parse('-h')).toThrow(HelpRequested);
    expect(() => parse('--help')).toThrow(HelpRequested);
    const text = usage();
    for (const f of ['-n int', '-w int', '-pct-noop', '-pct-low', '-rate', '-duration', '-batch', '-idempotency', '-wait', '-json', '-report', '-timeout', '-slots', '-seed']) {
      expect(text).toContain(f);
    }
    expect(text).toContain('(default 1000)');
    expect(text).toContain('(default 10m)');
  });
});

describe('the remainder rule', () => {
  it('noop takes what the other task kinds leave; kinds not given are 0', () => {
    expect(parse('-pct-flaky', '10', '-pct-fail', '5', '-pct-sleep', '5').taskMix).toEqual({ noop: 80, flaky: 10, fail: 5, sleep: 5 });
    expect(parse('-pct-fail', '30').taskMix).toEqual({ noop: 70, flaky: 0, fail: 30, sleep: 0 });
    expect(parse('-pct-sleep', '100').taskMix).toEqual({ noop: 0, flaky: 0, fail: 0, sleep: 100 });
  });

  it('noop given alone must be 100, since the others become 0', () => {
    expect(parse('-pct-noop', '100').taskMix).toEqual({ noop: 100, flaky: 0, fail: 0, sleep: 0 });
    expect(usageError(['-pct-noop', '90'])).toBe('task mix adds up to 90%, not 100%: -pct-noop 90 -pct-flaky 0 -pct-fail 0 -pct-sleep 0');
  });

  it('default takes what the other priorities leave', () => {
    expect(parse('-pct-critical', '25').priorityMix).toEqual({ critical: 25, high: 0, default: 75, low: 0 });
    expect(parse('-pct-high', '50', '-pct-low', '50').priorityMix).toEqual({ critical: 0, high: 50, default: 0, low: 50 });
  });

  it('the two groups are independent', () => {
    const o = parse('-pct-fail', '10', '-pct-low', '40');
    expect(o.taskMix).toEqual({ noop: 90, flaky: 0, fail: 10, sleep: 0 });
    expect(o.priorityMix).toEqual({ critical: 0, high: 0, default: 60, low: 40 });
  });
});

describe('sums that are not 100', () => {
  it('name the group, the sum and every percentage', () => {
    expect(usageError(['-pct-noop', '80', '-pct-flaky', '15', '-pct-fail', '5', '-pct-sleep', '5'])).toBe(
      'task mix adds up to 105%, not 100%: -pct-noop 80 -pct-flaky 15 -pct-fail 5 -pct-sleep 5',
    );
    expect(usageError(['-pct-critical', '10', '-pct-high', '10', '-pct-default', '10', '-pct-low', '10'])).toBe(
      'priority mix adds up to 40%, not 100%: -pct-critical 10 -pct-high 10 -pct-default 10 -pct-low 10',
    );
  });

  it('the remainder cannot be negative', () => {
    expect(usageError(['-pct-flaky', '60', '-pct-fail', '50'])).toBe('task mix adds up to 110%, not 100%: -pct-noop 0 -pct-flaky 60 -pct-fail 50 -pct-sleep 0');
  });
});

describe('bad flags and values name the flag', () => {
  it.each([
    [['-bogus'], 'flag provided but not defined: -bogus'],
    [['--nope=1'], 'flag provided but not defined: -nope'],
    [['-n'], 'flag needs an argument: -n'],
    [['-n', 'ten'], 'invalid value "ten" for flag -n: must be an integer'],
    [['-n', '0'], 'invalid value "0" for flag -n: must be at least 1'],
    [['-w', '1.5'], 'invalid value "1.5" for flag -w: must be an integer'],
    [['-pct-flaky', '101'], 'invalid value "101" for flag -pct-flaky: must be at most 100'],
    [['-pct-fail', '-5'], 'invalid value "-5" for flag -pct-fail: must be at least 0'],
    [['-rate', 'fast'], 'invalid value "fast" for flag -rate: must be a number'],
    [['-rate', '0'], 'invalid value "0" for flag -rate: must be at least 0.001'],
    [['-duration', '30'], 'invalid value "30" for flag -duration: "30" is missing a unit (use e.g. 30s, 1m30s, 500ms)'],
    [['-duration', 'soon'], 'invalid value "soon" for flag -duration: "soon" is not a duration (use e.g. 30s, 1m30s, 500ms)'],
    [['-duration', '0'], 'invalid value "0" for flag -duration: must be at least 1ms'],
    [['-timeout', '5x'], 'invalid value "5x" for flag -timeout: "5x" has an unknown unit "x" (use ns, us, ms, s, m or h)'],
    [['-batch', '1001'], 'invalid value "1001" for flag -batch: must be at most 1000'],
    [['-wait=maybe'], 'invalid value "maybe" for flag -wait: must be true or false'],
    [['-url', 'localhost:8080'], 'invalid value "localhost:8080" for flag -url: must be an http:// or https:// URL'],
    [['-url', 'not a url'], 'invalid value "not a url" for flag -url: is not a URL (e.g. http://localhost:8080)'],
    [['-report='], 'invalid value "" for flag -report: must not be empty'],
    [['-n', '5', '-n', '6'], 'flag -n given more than once'],
    [['-n', '5', 'extra'], 'unexpected argument "extra" (the load generator takes flags only; see -help)'],
    [['-wait', 'false'], 'unexpected argument "false" (the load generator takes flags only; see -help)'],
  ])('%j → %s', (argv, message) => {
    expect(usageError(argv)).toBe(message);
  });
});

describe('parseDuration (Go syntax)', () => {
  it.each([
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['2m', 120_000],
    ['1h2m3s4ms', 3_723_004],
    ['500us', 0.5],
    ['.5s', 500],
    ['0', 0],
  ])('%s = %d ms', (raw, ms) => {
    expect(parseDuration(raw)).toBeCloseTo(ms, 9);
  });

  it.each(['', '30', 's', '1d', '-1s', '1s2'])('rejects %j', (raw) => {
    expect(() => parseDuration(raw)).toThrow();
  });
});

it('redactUrl hides the password', () => {
  expect(redactUrl('postgres://app:secret@db:5432/app?sslmode=disable')).toBe('postgres://app:***@db:5432/app?sslmode=disable');
  expect(redactUrl('postgres://app@db/app')).toBe('postgres://app@db/app');
});

it('the README lists every flag with its default', () => {
  const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Load generator'), readme.indexOf('## Logs'));
  expect(section.length).toBeGreaterThan(100);
  for (const f of FLAGS) {
    const row = section.split('\n').find((l) => l.startsWith(`| \`-${f.name}\` |`));
    expect([f.name, row !== undefined]).toEqual([f.name, true]);
    const defaults = f.def !== undefined ? [f.def] : [];
    for (const d of defaults) expect([f.name, row!.split('|')[2]!.includes(d)]).toEqual([f.name, true]);
  }
});
