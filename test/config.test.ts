import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig } from '../src/config.js';

const coreDefaults = { host: '127.0.0.1', port: 8080, courierPoolSize: 5, requestTimeoutMs: 2000 };

describe('loadConfig', () => {
  // The four core variables here; the reliability, store and tracing ones have their own tests.
  it('uses the documented defaults when nothing is set', () => {
    expect(loadConfig({})).toMatchObject(coreDefaults);
    expect(defaultConfig).toMatchObject(coreDefaults);
  });

  it('defaultConfig is exactly what loadConfig returns with nothing set', () => {
    expect(loadConfig({})).toStrictEqual(defaultConfig);
  });

  it('reads LOG_LEVEL in any case, empty as info', () => {
    expect(loadConfig({ LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
    expect(loadConfig({ LOG_LEVEL: 'silent' }).logLevel).toBe('silent');
    expect(loadConfig({ LOG_LEVEL: ' ' }).logLevel).toBe('info');
  });

  it('treats empty and blank variables as unset', () => {
    expect(
      loadConfig({ HOST: '', PORT: ' ', COURIER_POOL_SIZE: '', REQUEST_TIMEOUT_MS: '' }),
    ).toMatchObject(coreDefaults);
  });

  it('reads valid overrides', () => {
    expect(
      loadConfig({
        HOST: '0.0.0.0',
        PORT: '3000',
        COURIER_POOL_SIZE: '12',
        REQUEST_TIMEOUT_MS: '250',
      }),
    ).toMatchObject({ host: '0.0.0.0', port: 3000, courierPoolSize: 12, requestTimeoutMs: 250 });
  });

  it('accepts the edges: PORT 0 (any free port) and 65535, a pool of one', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ COURIER_POOL_SIZE: '1' }).courierPoolSize).toBe(1);
    expect(loadConfig({ REQUEST_TIMEOUT_MS: '1' }).requestTimeoutMs).toBe(1);
  });

  const invalid: { variable: string; value: string }[] = [
    { variable: 'PORT', value: 'abc' },
    { variable: 'PORT', value: '70000' },
    { variable: 'PORT', value: '65536' },
    { variable: 'PORT', value: '-1' },
    { variable: 'PORT', value: '80.5' },
    { variable: 'PORT', value: '1e3' },
    { variable: 'PORT', value: '0x50' },
    { variable: 'COURIER_POOL_SIZE', value: '0' },
    { variable: 'COURIER_POOL_SIZE', value: '1.5' },
    { variable: 'COURIER_POOL_SIZE', value: 'five' },
    { variable: 'COURIER_POOL_SIZE', value: '-3' },
    { variable: 'REQUEST_TIMEOUT_MS', value: '0' },
    { variable: 'REQUEST_TIMEOUT_MS', value: '2s' },
    { variable: 'REQUEST_TIMEOUT_MS', value: '99999999999999999999' },
    { variable: 'LOG_LEVEL', value: 'verbose' },
    { variable: 'ORDER_STORE', value: 'mysql' },
    { variable: 'BENCH_FLOOR_ROUTE', value: 'yes' },
  ];

  it.each(invalid)(
    'rejects $variable=$value with a ConfigError naming it',
    ({ variable, value }) => {
      let thrown: unknown;
      try {
        loadConfig({ [variable]: value });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      const message = (thrown as ConfigError).message;
      expect(message.startsWith(`${variable} `), `got ${message}`).toBe(true);
      expect(message).toContain(JSON.stringify(value));
    },
  );

  it('reports the wrong variable even when others are valid', () => {
    expect(() => loadConfig({ PORT: '8081', COURIER_POOL_SIZE: '0' })).toThrow(
      /^COURIER_POOL_SIZE must be an integer from 1 to /,
    );
  });
});

describe('the order store and the workers', () => {
  const shared = { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://127.0.0.1/db' };

  it.each(['postgres', 'Postgres', 'POSTGRES', ''])(
    'WORKERS=2 starts with both URLs and ORDER_STORE=%j (any case, or unset)',
    (orderStore) => {
      const config = loadConfig({ ...shared, WORKERS: '2', ORDER_STORE: orderStore });
      expect(config).toMatchObject({ workers: 2, orderStore: 'postgres' });
    },
  );

  it.each([
    { ORDER_STORE: 'SQLite', DATABASE_URL: shared.DATABASE_URL, REDIS_URL: shared.REDIS_URL },
    { ORDER_STORE: 'postgres', DATABASE_URL: shared.DATABASE_URL },
    { REDIS_URL: shared.REDIS_URL },
  ])('WORKERS=2 refuses a store or pool the workers cannot share: %j', (env) => {
    expect(() => loadConfig({ ...env, WORKERS: '2' })).toThrow(/^WORKERS=2 needs /);
  });

  it('takes postgres as the default store when DATABASE_URL is set, sqlite otherwise', () => {
    expect(loadConfig({ DATABASE_URL: shared.DATABASE_URL }).orderStore).toBe('postgres');
    expect(loadConfig({}).orderStore).toBe('sqlite');
    expect(loadConfig({ ORDER_STORE: 'Memory' }).orderStore).toBe('memory');
  });
});
