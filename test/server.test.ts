import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { postOrder, withoutDurations } from './http/support.js';

// The real entry point, run as its own process the way `npm start` runs it (from the
// sources through tsx, so no build is needed), with the Node that runs the tests.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Server {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the first match of `pattern` in the output; rejects if the process exits first or after `timeoutMs`. */
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcess[] = [];
const dataDirs: string[] = [];

afterEach(async () => {
  for (const child of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function startServerProcess(env: Record<string, string>): Server {
  // Each process records its orders in a directory of its own, removed after the test.
  const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-server-test-'));
  dataDirs.push(dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      COURIER_POOL_SIZE: '',
      REQUEST_TIMEOUT_MS: '',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let output = '';
  const onData = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });

  const waitForOutput = (pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match = pattern.exec(output);
        if (match === null) return false;
        cleanUp();
        resolve(match);
        return true;
      };
      const onExit = (): void => {
        if (check()) return;
        cleanUp();
        reject(new Error(`server exited before printing ${pattern}; output:\n${output}`));
      };
      const timer = setTimeout(() => {
        cleanUp();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${output}`));
      }, timeoutMs);
      const cleanUp = (): void => {
        clearTimeout(timer);
        child.stdout.off('data', check);
        child.stderr.off('data', check);
        child.off('exit', onExit);
      };
      // Registered after onData, so each check sees the chunk that arrived.
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.once('exit', onExit);
      check();
    });

  return { child, output: () => output, waitForOutput, exited };
}

describe('the server process', () => {
  it('serves orders, and on SIGTERM lets the order in flight finish with 200, then exits 0', async () => {
    const server = startServerProcess({});
    const [, port] = await server.waitForOutput(/Server listening at http:\/\/127\.0\.0\.1:(\d+)/);

    const inFlight = postOrder(Number(port), {
      order_id: 'drain-1',
      amount: 500,
      delay_ms: { payment: 600, vendor: 0, courier: 0 },
    });
    // The request is logged once its head is parsed; the small body came in the same packet,
    // so the order is running before the process turns to the signal.
    await server.waitForOutput(/"msg":"incoming request"/);
    const signaledAt = performance.now();
    server.child.kill('SIGTERM');

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(withoutDurations(answer.body)).toStrictEqual({
      status: 'ok',
      order_id: 'drain-1',
      steps: [
        { name: 'payment', status: 'ok' },
        { name: 'vendor', status: 'ok' },
        { name: 'courier', status: 'ok' },
      ],
    });
    await expect(server.exited).resolves.toStrictEqual({ code: 0, signal: null });
    // It waited for the order, and no longer than the order's deadline.
    expect(performance.now() - signaledAt).toBeLessThan(2000 + 1500);
    expect(server.output()).toMatch(/shut down cleanly/);
  });

  it.each([
    { variable: 'PORT', value: 'abc' },
    { variable: 'COURIER_POOL_SIZE', value: '0' },
  ])(
    'refuses to start with $variable=$value, exiting non-zero with the reason',
    async ({ variable, value }) => {
      const server = startServerProcess({ [variable]: value });
      const { code } = await server.exited;
      expect(code).not.toBe(0);
      expect(server.output()).toContain(`${variable} must be an integer`);
      expect(server.output()).not.toMatch(/Server listening/);
    },
  );
});

describe('the test runtime', () => {
  const expectedMajor = process.env['EXPECT_NODE_MAJOR'];

  // CI runs the suite again on Node 22 and 24 and sets EXPECT_NODE_MAJOR to prove it.
  it.skipIf(expectedMajor === undefined)('is the Node version CI asked for', () => {
    console.log(`test worker runs on Node ${process.version} (${process.execPath})`);
    expect(process.versions.node.split('.')[0]).toBe(expectedMajor);
  });
});
