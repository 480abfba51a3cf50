import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { details, generator, measured, type Load } from './http-load.js';
import { row, type Row } from './report.js';
import { readCpuSeconds, startBareFloor, startServer } from './server-process.js';

/**
 * The per-order CPU budget: the default configuration (pool 128, every step at 1 ms, 64
 * connections, logs at info) measured for its CPU time per order (user + system of the whole
 * process, from /proc), beside a bare `node:http` server answering the same JSON in the same
 * run (bench/bare-floor-server.ts: the floor any Node service has), alternating, three rounds
 * each in the full run (the median round is reported). Then the same load under `--cpu-prof`
 * says where the event loop's time goes, by part of the order path.
 */

const connections = 64;
const poolEnv = { COURIER_POOL_SIZE: '128' };

/** monotonicUs is the monotonic clock in µs, the clock of a V8 CPU profile's timestamps. */
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

interface Measured {
  load: Load;
  /** CPU seconds over the measured load. */
  cpuSeconds: number;
  /** The measured load's start and end on the monotonic clock, µs. */
  from: number;
  to: number;
}

/** measure sends the load to `url` after a warm-up and reads process `pid`'s CPU around it. */
async function measure(
  url: string,
  pid: () => number,
  seconds: number,
  warmUp: number,
): Promise<Measured> {
  let cpuAtStart = 0;
  let from = 0;
  const load = await measured(url, connections, seconds, warmUp, {}, () => {
    cpuAtStart = readCpuSeconds(pid());
    from = monotonicUs();
  });
  return { load, cpuSeconds: readCpuSeconds(pid()) - cpuAtStart, from, to: monotonicUs() };
}

/** The bare floor: bench/bare-floor-server.ts in a pinned process of its own. */
async function measureBareFloor(seconds: number, warmUp: number): Promise<Measured> {
  const floor = await startBareFloor();
  try {
    return await measure(`${floor.url}/order`, () => floor.pid, seconds, warmUp);
  } finally {
    await floor.stop();
  }
}

/** The parts of the order path a profile sample is charged to. */
const parts = [
  'HTTP',
  'parsing and validation',
  'store and ledger',
  'logging',
  'metrics',
  'pipeline and service',
  'garbage collection',
  'other',
] as const;
type Part = (typeof parts)[number];

/**
 * partOf charges a frame to a part by its script's URL and its function's name, or answers
 * undefined when the frame says nothing (a runtime frame: its caller decides).
 */
function partOf(url: string, name: string): Part | undefined {
  if (name === '(garbage collector)') return 'garbage collection';
  if (url === '') {
    if (name === 'writev' || name === 'writeBuffer' || name === 'writeLatin1String') return 'HTTP';
    if (name === 'writeString' || name === 'writeUtf8String') return 'logging';
    if (/^validate\d*$/.test(name)) return 'parsing and validation';
    return undefined;
  }
  if (/\/src\/(store|ledger)\/|better-sqlite3/.test(url)) return 'store and ledger';
  if (/pino|sonic-boom|\/src\/http\/request-log|\/observability\/(order-log|refusal-log)/.test(url))
    return 'logging';
  if (/prom-client|\/src\/observability\//.test(url)) return 'metrics';
  if (/\/ajv\/|secure-json-parse|fast-uri|\/src\/http\/(schemas|validation-errors)/.test(url))
    return 'parsing and validation';
  if (/\/src\/(order|core|service|upstream)\//.test(url)) return 'pipeline and service';
  if (
    /fastify|find-my-way|light-my-request|avvio|fast-json-stringify|toad-cache|\/src\/http\//.test(
      url,
    ) ||
    /^node:(_http|net|internal\/(streams|stream_base_commons|http|net))/.test(url)
  )
    return 'HTTP';
  return undefined;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * breakdown reads a `--cpu-prof` profile and sums, per part, the time of its samples between
 * `from` and `to` (monotonic µs): each sample goes to the part of its innermost frame that
 * names one, else `other`; idle samples to none.
 */
function breakdown(profile: Profile, from: number, to: number): Map<Part, number> {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const partOfNode = new Map<number, Part | 'idle'>();
  const charge = (id: number): Part | 'idle' => {
    const known = partOfNode.get(id);
    if (known !== undefined) return known;
    let part: Part | 'idle' = 'other';
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = nodes.get(at)?.callFrame;
      if (frame === undefined) break;
      if (frame.functionName === '(idle)') {
        part = 'idle';
        break;
      }
      const found = partOf(frame.url, frame.functionName);
      if (found !== undefined) {
        part = found;
        break;
      }
    }
    partOfNode.set(id, part);
    return part;
  };
  const sums = new Map<Part, number>(parts.map((part) => [part, 0]));
  let time = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    time += delta;
    if (time < from || time > to) continue;
    const part = charge(profile.samples[i] ?? 0);
    if (part !== 'idle') sums.set(part, (sums.get(part) ?? 0) + delta);
  }
  return sums;
}

const us = (seconds: number, count: number): number => (seconds * 1e6) / count;
const usPerRequest = (m: Measured): number => us(m.cpuSeconds, m.load.requests);

/** medianRound is the round of median CPU per request (the upper one of an even count). */
function medianRound(rounds: readonly Measured[]): Measured {
  const sorted = [...rounds].sort((a, b) => usPerRequest(a) - usPerRequest(b));
  const median = sorted[Math.floor(sorted.length / 2)];
  if (median === undefined) throw new Error('no round was measured');
  return median;
}

/** spread is the lowest and highest CPU per request of `rounds`, in µs. */
function spread(rounds: readonly Measured[]): string {
  const values = rounds.map(usPerRequest);
  return `${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)}`;
}
const n = (value: number): string => Math.round(value).toLocaleString('en-US');

export async function cpuBudgetBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const seconds = options.quick ? 2 : 10;
  const warmUp = options.quick ? 1 : 2;

  // Whole-server runs of one build move by ±10% from one to the next on a shared machine: the
  // full run alternates the two, three rounds each, and reports each one's median round.
  const rounds = options.quick ? 1 : 3;
  const orders: Measured[] = [];
  const floors: Measured[] = [];
  for (let round = 0; round < rounds; round++) {
    const server = await startServer(poolEnv);
    try {
      orders.push(await measure(`${server.url}/order`, () => server.pid, seconds, warmUp));
    } finally {
      await server.stop();
    }
    floors.push(await measureBareFloor(seconds, warmUp));
  }
  const order = medianRound(orders);
  const floor = medianRound(floors);

  // The same load again under the profiler, which slows the server down: its figures are
  // shares, not the CPU per order above.
  const profileDir = mkdtempSync(join(tmpdir(), 'order-pipeline-cpu-prof-'));
  let profiled: Measured;
  let parts: Map<Part, number>;
  try {
    const profiledServer = await startServer(poolEnv, {
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    });
    try {
      profiled = await measure(
        `${profiledServer.url}/order`,
        () => profiledServer.pid,
        seconds,
        warmUp,
      );
    } finally {
      await profiledServer.stop();
    }
    // The main thread's profile is the largest: worker threads (the store's checkpointer)
    // write their own, mostly idle.
    const files = readdirSync(profileDir)
      .filter((file) => file.endsWith('.cpuprofile'))
      .map((file) => join(profileDir, file));
    const texts = files.map((file) => readFileSync(file, 'utf8'));
    const main = texts.sort((a, b) => b.length - a.length)[0];
    if (main === undefined) throw new Error('the profiled server wrote no profile');
    parts = breakdown(JSON.parse(main) as Profile, profiled.from, profiled.to);
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }

  const orderUs = us(order.cpuSeconds, order.load.requests);
  const floorUs = us(floor.cpuSeconds, floor.load.requests);
  const ofFloor = order.load.ordersPerSecond / floor.load.ordersPerSecond;
  const busyUs = [...parts.values()].reduce((sum, value) => sum + value, 0);
  const perOrder = (value: number): number => value / profiled.load.requests;
  return [
    row({
      section: 'cpu',
      scenario: `CPU per order, default configuration, pool 128, steps at 1 ms, ${connections} connections`,
      value: orderUs,
      unit: 'µs',
      figure: `${orderUs.toFixed(1)} µs CPU/order (${n(order.load.ordersPerSecond)} orders/s, ${Math.round(ofFloor * 100)}% of the bare floor)`,
      baseline: `bare node:http floor: ${floorUs.toFixed(1)} µs CPU/request, ${n(floor.load.ordersPerSecond)} req/s`,
      compare: `order: ${details(order.load)}; floor: ${details(floor.load)}; ${generator}${rounds > 1 ? `; median of ${rounds} rounds, order ${spread(orders)} µs, floor ${spread(floors)} µs` : ''}`,
      target: 'orders/s ≥ 85% of the bare floor',
      met: ofFloor >= 0.85 && order.load.non2xx + order.load.errors === 0,
    }),
    row({
      section: 'cpu',
      scenario: `the event loop's time per order by part (the same load under --cpu-prof, ${n(profiled.load.ordersPerSecond)} orders/s)`,
      value: perOrder(busyUs),
      unit: 'µs',
      figure: `${perOrder(busyUs).toFixed(1)} µs busy/order`,
      baseline: '',
      compare: [...parts]
        .sort((a, b) => b[1] - a[1])
        .map(([part, value]) => `${part} ${perOrder(value).toFixed(1)}`)
        .join(' · '),
    }),
  ];
}
