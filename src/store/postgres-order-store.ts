import pg from 'pg';
import { migrate, SqlOrderStore, type SqlClient, type SqlDatabase } from './sql-order-store.js';

export interface PostgresStoreOptions {
  /** A `postgres://` connection string. */
  readonly connectionString: string;
  /** Connections in the pool. */
  readonly poolSize: number;
}

/**
 * openPostgresOrderStore connects a pool to PostgreSQL and migrates the schema. The store
 * is shared: several instances may use it, each recovering only orders whose owner's lease
 * expired. Fails with the driver's error if the database is unreachable or the migration
 * fails; the pool is closed then.
 */
export async function openPostgresOrderStore(
  options: PostgresStoreOptions,
): Promise<SqlOrderStore> {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize });
  // An idle client that loses its connection emits 'error' on the pool; without a listener
  // that would crash the process. The next query gets a fresh connection.
  pool.on('error', () => undefined);
  const db: SqlDatabase = {
    query: queryOn(pool),
    transaction: async (work) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: SqlClient = {
          query: queryOn(client),
        };
        const value = await work(tx);
        await client.query('COMMIT');
        return value;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
  try {
    await migrate(db);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new SqlOrderStore(db, { shared: true });
}

/**
 * queryOn adapts a pool or client to {@link SqlClient}. `pg` types rows as `any`; asking for
 * `never` rows lets the caller's stated row type through without an unchecked `any`.
 */
function queryOn(client: pg.Pool | pg.PoolClient): SqlClient['query'] {
  return async (text, params) => ({ rows: (await client.query<never>(text, params)).rows });
}
