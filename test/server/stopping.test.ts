import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { postOrder } from '../http/support.js';
import { createThrowawayDatabase, postgresAvailable } from '../store/postgres-database.js';
import { eventually } from './load.js';
import { killServers, spawnServer, startArgs } from './server-process.js';

// Stopping works whatever the log destination is doing, and through npm.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const postgresUp = await postgresAvailable();

/** Processes and directories a test made itself, cleaned up after it. */
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await killServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** An order whose payment takes 600 ms: in flight when the signal comes. */
const slowOrder = (orderId: string) => ({
  order_id: orderId,
  amount: 1,
  delay_ms: { payment: 600, vendor: 0, courier: 0 },
});

/** exitOf resolves with the exit of `child`, or rejects after `ms`. */
function exitOf(child: ChildProcess, ms: number): Promise<{ code: number | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      resolve({ code: child.exitCode });
      return;
    }
    const timer = setTimeout(() => {
      reject(new Error(`process ${child.pid} still running ${ms} ms after the signal`));
    }, ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
  });
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'order-pipeline-stopping-'));
  cleanups.push(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * startWithStdout starts the server as `npm start` runs it, its stdout the file `stdoutPath`
 * opened for writing, logging at `logLevel`, and resolves once it is ready: its port, its
 * process and what it wrote to stderr so far.
 */
async function startWithStdout(
  stdoutPath: string,
  logLevel: string,
): Promise<{ port: number; child: ChildProcess; stderr: () => string }> {
  const port = await freePort();
  const out = openSync(stdoutPath, 'w');
  const child = spawn(process.execPath, startArgs(), {
    cwd: repoRoot,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: tempDir(),
      ORDER_STORE: '',
      DATABASE_URL: '',
      LOG_LEVEL: logLevel,
    },
    stdio: ['ignore', out, 'pipe'],
  });
  closeSync(out);
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  await eventually(async () => {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return ready?.status === 200 ? true : undefined;
  });
  return { port, child, stderr: () => stderr };
}

/**
 * exitsWithStdoutClosed starts the server with `env`, closes its stdout as `| head -2` does
 * (every later write gets EPIPE), sends SIGTERM, and checks that the process exits 0 — the
 * drained exit — within 10 s. No order is in flight: the shutdown is over while the line the
 * signal logged is still being written, which is when an exit used to hang on the write.
 */
async function exitsWithStdoutClosed(env: Record<string, string>): Promise<void> {
  const server = spawnServer(env);
  await server.listening();
  const stdout = server.child.stdout;
  if (stdout === null) throw new Error('want a stdout pipe');
  const closed = new Promise((resolve) => stdout.once('close', resolve));
  stdout.destroy();
  await closed;
  server.child.kill('SIGTERM');
  await expect(exitOf(server.child, 10_000)).resolves.toStrictEqual({ code: 0 });
}

describe('SIGTERM drains and exits 0 whatever the log destination does', () => {
  it(
    'stdout closed by its reader (EPIPE), with the embedded store',
    () => exitsWithStdoutClosed({}),
    30_000,
  );

  it.skipIf(!postgresUp)(
    'stdout closed by its reader (EPIPE), with PostgreSQL',
    async () => {
      const database = await createThrowawayDatabase();
      cleanups.push(() => database.drop());
      await exitsWithStdoutClosed({ DATABASE_URL: database.url });
    },
    30_000,
  );

  it('stdout on a full disk (ENOSPC on every write)', async () => {
    const { port, child, stderr } = await startWithStdout('/dev/full', 'debug');
    const inFlight = postOrder(port, slowOrder('disk-full'));
    // The order is admitted (its body was read) before the signal.
    await eventually(async () => {
      const run = await fetch(`http://127.0.0.1:${port}/order/disk-full`);
      return run.status === 200 ? true : undefined;
    });
    child.kill('SIGTERM');
    expect((await inFlight).status, 'the order in flight finished').toBe(200);
    await expect(exitOf(child, 10_000)).resolves.toStrictEqual({ code: 0 });
    expect(stderr(), 'nothing thrown').toBe('');
  }, 30_000);
});

describe('stdout to a file', () => {
  it('writes a burst of orders’ lines whole, one each, all of them by the drained exit', async () => {
    // A regular file: the lines of one turn of the loop are written together, synchronously.
    const logFile = join(tempDir(), 'server.log');
    const { port, child, stderr } = await startWithStdout(logFile, 'info');
    const ids = Array.from({ length: 50 }, (_, i) => `log-file-${i}`);
    const answers = await Promise.all(
      ids.map((orderId) => postOrder(port, { order_id: orderId, amount: 1 })),
    );
    expect(answers.map((answer) => answer.status)).toStrictEqual(ids.map(() => 200));
    child.kill('SIGTERM');
    await expect(exitOf(child, 10_000)).resolves.toStrictEqual({ code: 0 });
    expect(stderr(), 'nothing thrown').toBe('');
    const lines = readFileSync(logFile, 'utf8').split('\n');
    expect(lines.pop(), 'the file ends with a whole line').toBe('');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const ordered = records
      .filter((record) => record['msg'] === 'request completed' && record['url'] === '/order')
      .map((record) => record['order_id']);
    expect(ordered.sort()).toStrictEqual([...ids].sort());
    // The last lines, written as the process exits, are there too.
    expect(records.at(-1)?.['msg']).toBe('shut down cleanly');
  }, 30_000);
});

describe('npm start', () => {
  it('SIGTERM to the npm process reaches the server, which drains and exits; npm exits 0', async () => {
    const child = spawn('npm', ['start'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        PORT: '0',
        DATA_DIR: tempDir(),
        ORDER_STORE: '',
        DATABASE_URL: '',
        LOG_LEVEL: 'debug',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const listening = await eventually(
      () =>
        Promise.resolve(
          /"pid":(\d+),[^\n]*Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output) ??
            undefined,
        ),
      30_000,
    );
    const serverPid = Number(listening[1]);
    const port = Number(listening[2]);
    expect(serverPid, 'the server is a process of its own').not.toBe(child.pid);
    const inFlight = postOrder(port, slowOrder('npm-start'));
    await eventually(() =>
      Promise.resolve(output.includes('"msg":"order received"') ? true : undefined),
    );

    child.kill('SIGTERM');
    expect((await inFlight).status, 'the order in flight finished').toBe(200);
    await expect(exitOf(child, 15_000)).resolves.toStrictEqual({ code: 0 });
    expect(output).toContain('shut down cleanly');
    expect(output).not.toContain('second signal');
    expect(isRunning(serverPid), 'the server process is gone').toBe(false);
  }, 60_000);
});

/** isRunning tells whether process `pid` exists. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
