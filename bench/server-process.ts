import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built server, next to this file once the suite is compiled. */
const serverEntry = fileURLToPath(new URL('../src/server.js', import.meta.url));

/** BenchServer is the real server running as a child process on 127.0.0.1. */
export interface BenchServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** rssBytes reads the child's resident set size from /proc. */
  rssBytes(): number;
  /** cpuSeconds reads the child's CPU time so far (user + system) from /proc. */
  cpuSeconds(): number;
  /** stop sends SIGTERM and resolves once the child has exited. */
  stop(): Promise<void>;
  /** kill sends SIGKILL (a crash) and resolves once the child has exited. */
  kill(): Promise<void>;
}

/**
 * metrics reads the server's Prometheus metrics (`GET /metrics`) once and returns a reader of
 * unlabelled samples by name: NaN when one is not exposed or the server did not answer. One
 * read serves every name, as a read resets some of them (the event-loop delay histogram).
 */
export async function metrics(server: Pick<BenchServer, 'url'>): Promise<(name: string) => number> {
  const text = await new Promise<string>((resolve) => {
    http
      .get(`${server.url}/metrics`, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          resolve(body);
        });
      })
      .on('error', () => {
        resolve('');
      });
  });
  return (name) => {
    const sample = new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1];
    return sample === undefined ? Number.NaN : Number(sample);
  };
}

/**
 * startServer starts the server as `npm start` does, in its default configuration — the
 * embedded store in a fresh data directory (removed by `stop`), logs at info (to /dev/null:
 * one line per request is written, not displayed) — with `env` over it, on a free port of
 * 127.0.0.1, pinned to the last core when `taskset` is available (the load generator runs on
 * the others; `pin: false`: free to use every core), and resolves once `/healthz` answers. The
 * floor route is always on: it is what HTTP figures compare with. A variable of `env` set to
 * undefined is removed.
 */
export async function startServer(
  env: Record<string, string | undefined>,
  options: { pin?: boolean; nodeFlags?: readonly string[]; stdoutFile?: string } = {},
): Promise<BenchServer> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-bench-data-'));
  // BENCH_SERVER_NODE_FLAGS passes flags to the server's node, e.g. `--cpu-prof` or `--trace-gc`.
  const nodeFlags = [
    ...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
    ...(options.nodeFlags ?? []),
  ];
  // BENCH_SERVER_STDOUT names a file for the server's standard output (its log, `--trace-gc`),
  // unless the caller names one.
  const stdoutFile = options.stdoutFile ?? process.env['BENCH_SERVER_STDOUT'];
  const stdout = stdoutFile === undefined ? 'ignore' : openSync(stdoutFile, 'a');
  // The same V8 flag as `npm start`: a larger young generation, fewer scavenges per order.
  const plain = ['node', '--max-semi-space-size=64', ...nodeFlags, serverEntry];
  const command = options.pin === false ? anyCoreCommand(plain) : pinnedCommand(plain);
  const child = spawn(command[0] ?? 'node', command.slice(1), {
    env: definedOnly({
      ...process.env,
      ORDER_STORE: undefined,
      DATABASE_URL: undefined,
      LOG_LEVEL: undefined,
      MAX_INFLIGHT_ORDERS: undefined,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      BENCH_FLOOR_ROUTE: '1',
      ...env,
    }),
    stdio: ['ignore', stdout, 'inherit'],
  });
  if (typeof stdout === 'number') closeSync(stdout);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(url, child);
  const pid = child.pid ?? 0;
  return {
    url,
    port,
    pid,
    rssBytes: () => readRss(pid),
    cpuSeconds: () => readCpuSeconds(pid),
    stop: async () => {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
      rmSync(dataDir, { recursive: true, force: true });
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** definedOnly drops the variables set to undefined: `{ ORDER_STORE: undefined }` unsets one. */
function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

/** A bare node:http floor server (bench/bare-floor-server.ts) running pinned. */
export interface BareFloor {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * startBareFloor starts bench/bare-floor-server.ts in a process of its own, pinned to the
 * server's core, and resolves once it prints that it listens.
 */
export async function startBareFloor(): Promise<BareFloor> {
  const port = await freePort();
  const entry = fileURLToPath(new URL('./bare-floor-server.js', import.meta.url));
  const command = pinnedCommand(['node', entry, String(port)]);
  const child = spawn(command[0] ?? 'node', command.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    await exited;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', () => {
        resolve();
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, stop };
}

/**
 * machineCores is the number of the machine's CPUs. Not the number this process may run on
 * (`availableParallelism()`): the suite runs pinned off the server's core, and from there it
 * must still place the server on the last core of the machine, not leave it on its own.
 */
export const machineCores = (): number => cpus().length;

/** pinnedCommand prefixes `taskset -c <last core>` when taskset exists and there are 2+ cores. */
export function pinnedCommand(command: string[]): string[] {
  if (machineCores() < 2 || !hasTaskset()) return command;
  return ['taskset', '-c', String(machineCores() - 1), ...command];
}

/**
 * anyCoreCommand lets `command` run on every core of the machine (`taskset -c 0-<last>`): a
 * child inherits its parent's cores, and the suite's are all but the server's.
 */
function anyCoreCommand(command: string[]): string[] {
  if (machineCores() < 2 || !hasTaskset()) return command;
  return ['taskset', '-c', `0-${machineCores() - 1}`, ...command];
}

let tasksetFound: boolean | undefined;
function hasTaskset(): boolean {
  if (tasksetFound === undefined) {
    tasksetFound = ['/usr/bin/taskset', '/bin/taskset'].some((path) => {
      try {
        readFileSync(path);
        return true;
      } catch {
        return false;
      }
    });
  }
  return tasksetFound;
}

function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match?.[1] === undefined ? Number.NaN : Number(match[1]) * 1024;
}

/** Clock ticks per second of /proc's CPU times: 100 on Linux (`getconf CLK_TCK`). */
const clockTicks = 100;

/** readCpuSeconds reads process `pid`'s CPU time so far (user + system, every thread). */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** freePort is a port of 127.0.0.1 free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => {
        resolve(port);
      });
    });
  });
}

async function waitUntilHealthy(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const status = await new Promise<number>((resolve) => {
      http
        .get(`${url}/healthz`, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        })
        .on('error', () => {
          resolve(0);
        });
    });
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('server did not become healthy within 30 s');
}

export interface Timed {
  status: number;
  ms: number;
}

let posted = 0;

/**
 * post sends one JSON POST of `body` with a fresh `order_id` (the service answers a repeated
 * id from its record) on `agent`, and resolves with the status and the time from send to the
 * end of the response.
 */
export function post(url: string, body: object, agent: http.Agent): Promise<Timed> {
  const payload = JSON.stringify({ ...body, order_id: `bench-${process.pid}-${posted++}` });
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, ms: performance.now() - started });
        });
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}
