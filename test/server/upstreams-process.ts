import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The reference upstreams (upstreams/reference-upstreams.ts) run as `npm run upstreams` runs
// them, as a process of their own on loopback, on free ports.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export type UpstreamName = 'payment' | 'vendor' | 'courier';

/** A request as an upstream's ledger shows it. */
export interface SeenRequest {
  readonly key: string;
  readonly action: 'apply' | 'undo';
  readonly status: number | 'aborted' | 'lost';
  readonly socketClosedEarly: boolean;
  /** The W3C trace context the request carried, if any. */
  readonly traceparent?: string;
}

/** An upstream's ledger (GET /ledger). */
export interface UpstreamLedger {
  readonly requests: readonly SeenRequest[];
  readonly effects: readonly { key: string; orderId: string; amount: number; undone: boolean }[];
  readonly charged?: number;
  readonly refunded?: number;
}

export interface UpstreamsProcess {
  readonly urls: Readonly<Record<UpstreamName, string>>;
  /** The variables examples/pipeline.json reads to find them. */
  readonly env: Readonly<Record<string, string>>;
  ledger(name: UpstreamName): Promise<UpstreamLedger>;
  control(name: UpstreamName, behaviour: Record<string, number | string>): Promise<void>;
  kill(): Promise<void>;
}

const running: ChildProcess[] = [];

/** startUpstreams spawns the reference upstreams and resolves once they listen. */
export async function startUpstreams(): Promise<UpstreamsProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'upstreams/reference-upstreams.ts')],
    {
      cwd: repoRoot,
      env: { ...process.env, PAYMENT_PORT: '0', VENDOR_PORT: '0', COURIER_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.push(child);
  const urls = await new Promise<Record<UpstreamName, string>>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      reject(new Error(`reference upstreams did not start; output:\n${output}`));
    }, 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const line = /\{"msg":"reference upstreams listening".*\}/.exec(output);
      if (line === null) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      resolve(JSON.parse(line[0]) as Record<UpstreamName, string>);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`reference upstreams exited; output:\n${output}`));
    });
  });
  return {
    urls,
    env: { PAYMENT_URL: urls.payment, VENDOR_URL: urls.vendor, COURIER_URL: urls.courier },
    ledger: async (name) => (await (await fetch(`${urls[name]}/ledger`)).json()) as UpstreamLedger,
    control: async (name, behaviour) => {
      const response = await fetch(`${urls[name]}/control`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(behaviour),
      });
      await response.text();
    },
    kill: () => killProcess(child),
  };
}

/** killUpstreams kills every reference upstreams process still running. */
export async function killUpstreams(): Promise<void> {
  await Promise.all(running.splice(0).map(killProcess));
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

const pipelineDirs: string[] = [];

/**
 * pipelineFile writes examples/pipeline.json, changed by `edit`, to a file of its own and
 * returns its path; {@link removePipelineFiles} removes them.
 */
export function pipelineFile(edit: (pipeline: PipelineJson) => void = () => undefined): string {
  const pipeline = JSON.parse(
    readFileSync(join(repoRoot, 'examples/pipeline.json'), 'utf8'),
  ) as PipelineJson;
  edit(pipeline);
  const dir = mkdtempSync(join(tmpdir(), 'order-pipeline-file-'));
  pipelineDirs.push(dir);
  const path = join(dir, 'pipeline.json');
  writeFileSync(path, JSON.stringify(pipeline, null, 2));
  return path;
}

export function removePipelineFiles(): void {
  for (const dir of pipelineDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The parts of a pipeline file the tests change. */
export interface PipelineJson {
  steps: Record<string, unknown>[];
}
