import { ConfigError, loadConfig, SETTINGS } from '../../services/core/config/config';

describe('loadConfig', () => {
  it('uses the Go defaults', () => {
    const cfg = loadConfig({});
    expect(cfg.POSTGRES_URL).toBe('postgres://app:app@localhost:5432/app?sslmode=disable');
    expect(cfg.REDIS_ADDR).toBe('localhost:6379');
    expect(cfg.METRICS_ADDR).toBe(':2112');
    expect(cfg.WORKER_POOL).toBe(12);
    expect(cfg.VIS_TIMEOUT_MS).toBe(60000);
    expect(cfg.RETRY_BASE_MS).toBe(500);
    expect(cfg.RETRY_MAX_MS).toBe(30000);
    expect(cfg.RETRY_JITTER_MS).toBe(500);
    expect(cfg.RETRY_BATCH_SIZE).toBe(100);
    expect(cfg.API_ADDR).toBe(':8080');
    expect(cfg.QUEUE_WEIGHTS).toEqual({ critical: 8, high: 4, default: 2, low: 1 });
  });

  it('gives the worker its own metrics port unless set', () => {
    expect(loadConfig({}, 'worker').METRICS_ADDR).toBe(':2113');
    expect(loadConfig({ METRICS_ADDR: ':9000' }, 'worker').METRICS_ADDR).toBe(':9000');
  });

  it('parses typed values', () => {
    const cfg = loadConfig({ WORKER_POOL: '24', QUEUE_STRATEGY: 'strict', QUEUE_WEIGHTS: 'low=1,default=1,high=1,critical=1' });
    expect(cfg.WORKER_POOL).toBe(24);
    expect(cfg.QUEUE_STRATEGY).toBe('strict');
    expect(cfg.QUEUE_WEIGHTS.critical).toBe(1);
  });

  it.each([
    ['WORKER_POOL', 'many', /WORKER_POOL="many": must be an integer/],
    ['WORKER_POOL', '0', /WORKER_POOL="0": must be between 1 and/],
    ['VIS_TIMEOUT_MS', '1.5', /VIS_TIMEOUT_MS="1.5": must be an integer/],
    ['REDIS_ADDR', 'nohost', /REDIS_ADDR="nohost": must look like host:port/],
    ['REDIS_ADDR', '', /REDIS_ADDR="": must not be empty/],
    ['QUEUE_STRATEGY', 'random', /QUEUE_STRATEGY="random": must be one of weighted, strict/],
    ['QUEUE_WEIGHTS', 'critical=8,high=4', /QUEUE_WEIGHTS=.*missing weight for default, low/],
    ['QUEUE_WEIGHTS', 'urgent=1', /unknown priority "urgent"/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud": must be one of/],
  ])('rejects %s=%s naming the variable', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('never prints a secret setting it refuses (a bootstrap key with a trailing newline)', () => {
    const key = `tsk_0123456789abcdef_${'S3cr3t'.repeat(7)}x`;
    let message = '';
    try {
      loadConfig({ BOOTSTRAP_ADMIN_KEY: `${key}\n` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/BOOTSTRAP_ADMIN_KEY \(not shown: 65 characters, with whitespace\): must look like a key/);
    expect(message).not.toContain('S3cr3t');
  });

  it('reports every invalid variable at once', () => {
    try {
      loadConfig({ WORKER_POOL: 'x', RETRY_BASE_MS: '-1' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect((err as ConfigError).problems).toHaveLength(2);
    }
  });

  it('takes retention ages of 0 (keep forever) or at least a minute', () => {
    expect(loadConfig({}).RETENTION_SUCCEEDED_MS).toBe(7 * 86_400_000);
    expect(loadConfig({}).RETENTION_DEAD_MS).toBe(30 * 86_400_000);
    expect(loadConfig({ RETENTION_CANCELLED_MS: '0', RETENTION_DEAD_MS: '60000' })).toMatchObject({ RETENTION_CANCELLED_MS: 0, RETENTION_DEAD_MS: 60000 });
    expect(() => loadConfig({ RETENTION_DEAD_MS: '5000' })).toThrow(/RETENTION_DEAD_MS=5000: must be 0 \(keep forever\) or at least 60000/);
    expect(() => loadConfig({ RETENTION_SUCCEEDED_MS: '-1' })).toThrow(/RETENTION_SUCCEEDED_MS="-1": must be between 0 and/);
  });

  it('serves the console at /ui unless told otherwise, never under an API path', () => {
    expect(loadConfig({})).toMatchObject({ UI_BASE_PATH: '/ui', UI_ENABLED: 'true' });
    expect(loadConfig({ UI_BASE_PATH: '/ops/console', UI_ENABLED: 'false' })).toMatchObject({ UI_BASE_PATH: '/ops/console', UI_ENABLED: 'false' });
    for (const bad of ['ui', '/ui/', '/', '/a b', '/ui?x', '/../ui']) expect(() => loadConfig({ UI_BASE_PATH: bad })).toThrow(/UI_BASE_PATH=/);
    for (const taken of ['/tasks', '/Tasks/ui', '/admin/console', '/openapi.json']) expect(() => loadConfig({ UI_BASE_PATH: taken })).toThrow(/must not be under an API path/);
    expect(() => loadConfig({ UI_ENABLED: 'yes' })).toThrow(/UI_ENABLED=/);
  });

  it('rejects a cap below the base', () => {
    expect(() => loadConfig({ RETRY_BASE_MS: '5000', RETRY_MAX_MS: '1000' })).toThrow(/RETRY_MAX_MS=1000: must be at least RETRY_BASE_MS/);
  });

  it('rejects heartbeats too slow to keep a lease', () => {
    expect(() => loadConfig({ VIS_TIMEOUT_MS: '60000', HEARTBEAT_INTERVAL_MS: '60000' })).toThrow(/HEARTBEAT_INTERVAL_MS=60000: must be at most half of VIS_TIMEOUT_MS/);
    expect(() => loadConfig({ HEARTBEAT_INTERVAL_MS: '30001' })).toThrow(/HEARTBEAT_INTERVAL_MS=30001/);
    expect(loadConfig({ HEARTBEAT_INTERVAL_MS: '30000' }).HEARTBEAT_INTERVAL_MS).toBe(30000);
    expect(loadConfig({ VIS_TIMEOUT_MS: '1000' }).HEARTBEAT_INTERVAL_MS).toBe(0);
  });

  it('reads REDIS_CLUSTER_NODES as a list of host:port (empty: the single Redis at REDIS_ADDR)', () => {
    expect(loadConfig({}).REDIS_CLUSTER_NODES).toEqual([]);
    expect(loadConfig({ REDIS_CLUSTER_NODES: ' redis-0.redis:6379, 10.0.0.7:7001 ' }).REDIS_CLUSTER_NODES).toEqual(['redis-0.redis:6379', '10.0.0.7:7001']);
    for (const [value, message] of [
      ['redis-0', /"redis-0" is not host:port/],
      ['a:1,,b:2', /"" is not host:port/],
      ['a:0', /port of "a:0" must be between 1 and 65535/],
      ['a:70000', /must be between 1 and 65535/],
      ['a:1,a:1', /"a:1" is listed twice/],
      ['redis://a:1', /is not host:port/],
    ] as const) {
      expect(() => loadConfig({ REDIS_CLUSTER_NODES: value })).toThrow(message);
    }
  });

  it('the api and worker run on a Redis Cluster; REDIS_PARTITIONS is 1 to 256', () => {
    for (const service of ['api', 'worker'] as const) {
      expect(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_PARTITIONS: '6' }, service)).toMatchObject({ REDIS_CLUSTER_NODES: ['127.0.0.1:7000'], REDIS_PARTITIONS: 6 });
    }
    expect(loadConfig({}).REDIS_PARTITIONS).toBe(1);
    for (const bad of ['0', '257', '1.5', 'three']) expect(() => loadConfig({ REDIS_PARTITIONS: bad })).toThrow(/REDIS_PARTITIONS/);
  });

  it('documents every setting', () => {
    for (const [name, s] of Object.entries(SETTINGS)) {
      expect(s.doc.length).toBeGreaterThan(10);
      expect(() => s.parse(s.default)).not.toThrow();
      expect(name).toMatch(/^[A-Z][A-Z0-9_]+$/);
    }
  });
});
