import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The real entry point, run as its own process the way `npm start` runs it (from the sources
// through tsx, so no build is needed), with the Node that runs the tests.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

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

const started: ServerProcess[] = [];

/**
 * spawnServer starts the real server on 127.0.0.1 and a free port, logging at info, with
 * `env` over the test's own environment. Its output is read continuously, so the child never
 * blocks on a full pipe. Stop it with {@link killServers} after the test.
 */
export function spawnServer(
  env: Record<string, string>,
  options: SpawnOptions = {},
): ServerProcess {
  const entry = ['--import', 'tsx', 'src/server.ts'];
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
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
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

/** killServers kills every server still running with SIGKILL and waits until each has exited. */
export async function killServers(): Promise<void> {
  await Promise.all(
    started.splice(0).map(async ({ child, exited }) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }),
  );
}
