import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminUrl, postgresAvailable } from '../store/postgres-database.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';

// A setting that points at something unusable stops the server with one fatal line that
// names the setting and what to check: no stack trace, no retrying for ever.

const postgresUp = await postgresAvailable();

const cleanups: (() => void)[] = [];

afterEach(async () => {
  await killServers();
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A log line as the server writes it. */
interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly variable?: string;
}

/**
 * failsToStart waits for `server` to exit and checks that it exited 1 within `withinMs` of
 * being spawned, having printed only JSON log lines, one of them fatal, with no stack trace
 * anywhere; it resolves with the fatal line and the number of lines.
 */
async function failsToStart(
  server: ServerProcess,
  withinMs = 10_000,
): Promise<{ fatal: LogLine; lines: number }> {
  const spawnedAt = performance.now();
  const { code } = await server.exited;
  expect(code, 'exit code').toBe(1);
  expect(performance.now() - spawnedAt, 'ms to exit').toBeLessThan(withinMs);
  const output = server.output();
  expect(output, 'no stack frame').not.toMatch(/^\s+at /m);
  const lines = output
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
  const fatal = lines.filter((line) => line.level === 60);
  expect(fatal, 'one fatal line').toHaveLength(1);
  return { fatal: fatal[0] as LogLine, lines: lines.length };
}

/** listeningSocket listens on a free port of 127.0.0.1 and resolves with the port. */
function listeningSocket(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      cleanups.push(() => server.close());
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

describe('the server refuses to start in one line', () => {
  it('DATABASE_URL of a server that does not answer', async () => {
    const server = spawnServer({ DATABASE_URL: 'postgres://127.0.0.1:1/x' });
    const { fatal, lines } = await failsToStart(server);
    expect(lines).toBe(1);
    expect(fatal).toMatchObject({
      variable: 'DATABASE_URL',
      msg: 'DATABASE_URL: cannot connect to 127.0.0.1:1 (ECONNREFUSED): is PostgreSQL running and the URL right?',
    });
  });

  it.skipIf(!postgresUp)('DATABASE_URL naming a database that does not exist', async () => {
    const url = new URL(adminUrl);
    url.pathname = '/no_such_db_of_order_pipeline';
    const server = spawnServer({ DATABASE_URL: url.toString() });
    const { fatal, lines } = await failsToStart(server);
    expect(lines).toBe(1);
    expect(fatal).toMatchObject({
      variable: 'DATABASE_URL',
      msg:
        'DATABASE_URL: database "no_such_db_of_order_pipeline" does not exist (3D000): ' +
        'create it, or name an existing database in the URL',
    });
  });

  it('REDIS_URL of a server that does not answer', async () => {
    const server = spawnServer({ REDIS_URL: 'redis://127.0.0.1:1' });
    const { fatal, lines } = await failsToStart(server);
    expect(lines).toBe(1);
    expect(fatal).toMatchObject({
      variable: 'REDIS_URL',
      msg: 'REDIS_URL: cannot connect to 127.0.0.1:1 (ECONNREFUSED): is Redis running and the URL right?',
    });
  });

  it('PORT already in use', async () => {
    const port = await listeningSocket();
    const server = spawnServer({ PORT: String(port) });
    const { fatal } = await failsToStart(server);
    // The store was opened (and is closed again) before the listen failed.
    expect(fatal).toMatchObject({
      variable: 'PORT',
      msg: `PORT: 127.0.0.1:${port} is already in use (EADDRINUSE): stop what listens there, or choose another PORT`,
    });
  });

  it('DATA_DIR held by another live server', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-locked-'));
    cleanups.push(() => {
      rmSync(dataDir, { recursive: true, force: true });
    });
    const holder = spawnServer({ DATA_DIR: dataDir });
    await holder.listening();
    const server = spawnServer({ DATA_DIR: dataDir });
    const { fatal, lines } = await failsToStart(server);
    expect(lines).toBe(1);
    expect(fatal).toMatchObject({
      variable: 'DATA_DIR',
      msg:
        `DATA_DIR: ${dataDir} is in use by process ${holder.child.pid}: stop that server, ` +
        'or give this one a DATA_DIR of its own',
    });
  });
});
