import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The real server, run as its own process exactly as `npm start` runs it: the command of the
// package's `start` script (the build, kept fresh by test/global-setup.ts, with the same Node
// flags), with the Node that runs the tests, in its default configuration unless a test
// says otherwise.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/**
 * startArgs is the `start` script of package.json without its leading `node` (and the `exec`
 * before it, which makes the shell npm runs the script in hand its signals to Node).
 */
export function startArgs(): string[] {
  const manifest: unknown = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  const start =
    typeof manifest === 'object' && manifest !== null && 'scripts' in manifest
      ? (manifest.scripts as Record<string, string>)['start']
      : undefined;
  const [node, ...args] = (start ?? '').replace(/^exec\s+/, '').split(/\s+/);
  if (node !== 'node') throw new Error(`unexpected start script: ${String(start)}`);
  return args;
}

/** ServerProcess is a spawned `src/server.ts` and what it has written so far. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /**
   * waitForOutput resolves with the first match of `pattern` in the output; it rejects if the
   * process exits first or after `timeoutMs`. Its listeners and timer are removed either way.
   */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** listening resolves with the port once the server logs that it listens (see waitForOutput). */
  listening(timeoutMs?: number): Promise<number>;
  /** Resolves once the process has exited, with its exit code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  /** Raises the child's open-file limit (`ulimit -n`) before it starts, best effort. */
  maxOpenFiles?: number;
}

/**
 * The variables of the configuration a test's own environment might hold: cleared for the
 * child, so it runs the defaults unless the test sets them.
 */
const configVariables = [
  'ORDER_STORE',
  'DATA_DIR',
  'DATABASE_URL',
  'STORE_SYNC',
  'COURIER_POOL_SIZE',
  'REQUEST_TIMEOUT_MS',
  'LOG_LEVEL',
  'MAX_INFLIGHT_ORDERS',
];

const started: ServerProcess[] = [];

const dataDirs: string[] = [];

/**
 * spawnServer starts the real server on 127.0.0.1 and a free port, in its default
 * configuration — the embedded store in a fresh data directory of its own, removed by
 * {@link killServers} — with `env` over it. Its output is read continuously, so the child
 * never blocks on a full pipe. Stop it with {@link killServers} after the test.
 */
export function spawnServer(
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): ServerProcess {
  const entry = startArgs();
  const defaults: Record<string, string> = {};
  for (const name of configVariables) defaults[name] = '';
  if (env['DATA_DIR'] === undefined) {
    defaults['DATA_DIR'] = mkdtempSync(join(tmpdir(), 'order-pipeline-server-'));
    dataDirs.push(defaults['DATA_DIR']);
  }
  const [command, args] =
    options.maxOpenFiles === undefined
      ? [process.execPath, entry]
      : [
          'bash',
          [
            '-c',
            `ulimit -n ${options.maxOpenFiles} 2>/dev/null; exec "$0" "$@"`,
            process.execPath,
            ...entry,
          ],
        ];
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...defaults, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

  const waitForOutput = (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> =>
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

  const server: ServerProcess = {
    child,
    output: () => output,
    waitForOutput,
    listening: async (timeoutMs) => {
      const [, port] = await waitForOutput(
        /Server listening at http:\/\/127\.0\.0\.1:(\d+)/,
        timeoutMs,
      );
      return Number(port);
    },
    exited,
  };
  started.push(server);
  return server;
}

/**
 * killServers kills every server still running with SIGKILL, waits until each has exited,
 * and removes the data directories {@link spawnServer} made.
 */
export async function killServers(): Promise<void> {
  await Promise.all(
    started.splice(0).map(async ({ child, exited }) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }),
  );
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
