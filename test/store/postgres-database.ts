import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** The server the PostgreSQL tests use; its `test` database hosts the throwaway ones. */
export const adminUrl =
  process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface ThrowawayDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * createThrowawayDatabase creates an empty database `order_pipeline_test_<random>` and
 * returns its URL and a function that drops it. Rejects if PostgreSQL is unreachable.
 */
export async function createThrowawayDatabase(): Promise<ThrowawayDatabase> {
  const name = `order_pipeline_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/**
 * postgresAvailable tells whether the test server answers. Outside CI the PostgreSQL tests
 * are skipped when it does not; in CI (CI=true) they run and fail.
 */
export async function postgresAvailable(): Promise<boolean> {
  if (process.env['CI'] === 'true') return true;
  try {
    await admin('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
