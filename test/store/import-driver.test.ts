import { describe, expect, it } from 'vitest';
import { importDriver } from '../../src/store/import-driver.js';

// A driver is an optional peer dependency: its absence must say what to install, and any
// other failure of its import must come through as it is.

describe('importDriver', () => {
  it('resolves with the module when the package is installed', async () => {
    const pg = await importDriver('pg', 'the PostgreSQL order store', () => import('pg'));
    expect(typeof pg.default.Pool).toBe('function');
  });

  it('rejects with what to install when the package is missing, its error as the cause', async () => {
    const name = 'order-pipeline-no-such-driver';
    const missing = import(name);
    const failure = await importDriver(name, 'the test store', () => missing).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe(
      `the test store needs the package ${name}, which is not installed: npm install ${name}`,
    );
    await expect(missing).rejects.toBe((failure as Error).cause);
  });

  it('passes through a failure other than a missing package', async () => {
    const broken = new Error('the native module was built for another Node');
    await expect(
      importDriver('better-sqlite3', 'the SQLite order store', () => Promise.reject(broken)),
    ).rejects.toBe(broken);
  });

  it('passes through a missing package other than the driver', async () => {
    const other = Object.assign(new Error("Cannot find package 'pg-types' imported from pg"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    await expect(
      importDriver('pg', 'the PostgreSQL order store', () => Promise.reject(other)),
    ).rejects.toBe(other);
  });
});
