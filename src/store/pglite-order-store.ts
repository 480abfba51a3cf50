import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { migrate, SqlOrderStore, type SqlDatabase } from './sql-order-store.js';

/**
 * openPgliteOrderStore opens (creating if needed) the embedded store in `dataDir` and
 * migrates it. `memory://` keeps the data in memory only. The store is unshared: one
 * process owns the directory, so every order running at start-up is an orphan of a
 * process that died. Fails with PGlite's error if the directory cannot be opened.
 */
export async function openPgliteOrderStore(dataDir: string): Promise<SqlOrderStore> {
  if (!dataDir.startsWith('memory://')) await mkdir(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir);
  const db: SqlDatabase = {
    query: (text, params) => pglite.query(text, params),
    transaction: (work) => pglite.transaction((tx) => work(tx)),
    close: () => pglite.close(),
  };
  try {
    await migrate(db);
  } catch (error) {
    await pglite.close();
    throw error;
  }
  return new SqlOrderStore(db, { shared: false });
}
