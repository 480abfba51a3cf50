import { CancelSource, link } from '../src/core/cancellation.js';
import { OrderError } from '../src/order/errors.js';
import type { Order, StepName } from '../src/order/order.js';
import { defaultConfig } from '../src/config.js';
import { Semaphore } from '../src/core/semaphore.js';
import { simulatedSteps } from '../src/order/simulated-steps.js';
import { serviceSettings } from '../src/server.js';
import { OrderService } from '../src/service/order-service.js';
import { MemoryOrderStore } from '../src/store/memory-order-store.js';
import { row, type Row } from './report.js';

/**
 * The soak: a great many orders in-process through the real order service (simulated steps
 * at 0 ms, a pool of 4 shared by 64 orders in flight), with mixed outcomes and random client
 * aborts, each order under a deadline and linked to one long-lived parent, as a server's
 * orders are. Afterwards nothing may be left: heap after GC at most 5% above its warm value,
 * no listener on any parent, no timer, tracker and pool at zero.
 */

const collect = (): void => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the soak needs node --expose-gc');
  gc();
  gc();
};

const timers = (): number =>
  process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

const clientGone = new OrderError('canceled', 'the client closed the connection');
const deadlineMs = 1000;
const deadlinePassed = new OrderError('timeout', `order did not complete within ${deadlineMs} ms`);
const failSteps: readonly (StepName | undefined)[] = ['payment', 'vendor', 'courier'];

export async function soakBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const total = options.quick ? 20_000 : 1_000_000;
  const concurrency = 64;
  const service = new OrderService({
    ...serviceSettings(defaultConfig),
    store: new MemoryOrderStore(),
    courierPool: new Semaphore(4),
    steps: (courierPool) =>
      simulatedSteps({ courierPool, delays: { payment: 0, vendor: 0, courier: 0 } }),
  });
  const server = new CancelSource();
  const timersBefore = timers();
  let seed = 0x2545f491;
  const random = (): number => {
    // xorshift32: deterministic, so every run soaks the same mix.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  const outcomes = new Map<string, number>();
  let listenersLeft = 0;
  let started = 0;
  let warmHeap = Number.NaN;
  const warmAt = Math.floor(total / 10);

  const one = async (): Promise<void> => {
    const n = started++;
    const r = random();
    const order: Order = {
      id: `soak-${n}`,
      amount: 100,
      failStep: r < 0.3 ? failSteps[Math.floor(r * 10)] : undefined,
    };
    // As the service does: the client's cancellation is linked to the server and carries the
    // order's deadline.
    const client = new CancelSource();
    const unlink = link(server, client);
    const deadline = setTimeout(() => client.abort(deadlinePassed), deadlineMs);
    const abortRoll = random();
    if (abortRoll < 0.05) client.abort(clientGone);
    else if (abortRoll < 0.1) queueMicrotask(() => client.abort(clientGone));
    const outcome = await service.pipeline.run(order, { parent: client });
    clearTimeout(deadline);
    unlink();
    listenersLeft += client.listenerCount;
    const key = outcome.error?.kind ?? 'ok';
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  };
  const worker = async (): Promise<void> => {
    while (started < total) {
      await one();
      if (started === warmAt) {
        collect();
        warmHeap = process.memoryUsage().heapUsed;
      }
    }
  };

  const startedAt = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - startedAt) / 1000;
  // Let the last continuations and cleared timers go before measuring.
  await new Promise((resolve) => setImmediate(resolve));
  collect();
  const endHeap = process.memoryUsage().heapUsed;
  const growth = (endHeap - warmHeap) / warmHeap;
  const timersLeft = timers() - timersBefore;
  const pool = service.courierPool;
  const left = {
    listeners: listenersLeft + server.listenerCount,
    timers: timersLeft,
    tracker: service.tracker.active,
    poolInUse: pool.inUse,
    poolWaiting: pool.waiting,
  };
  const clean = Object.values(left).every((value) => value === 0);
  const mix = [...outcomes].map(([kind, count]) => `${kind} ${count}`).join(', ');
  return [
    row({
      section: 'soak',
      scenario: `${total.toLocaleString('en-US')} orders, mixed outcomes, random aborts`,
      value: growth * 100,
      unit: '%',
      figure: `heap ${(endHeap / 1e6).toFixed(1)} MB after GC (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%)`,
      baseline: `warm heap ${(warmHeap / 1e6).toFixed(1)} MB`,
      compare: `${Math.round(total / seconds).toLocaleString('en-US')} orders/s; ${mix}`,
      target: 'heap ≤ warm + 5%',
      met: growth <= 0.05,
    }),
    row({
      section: 'soak',
      scenario: 'left behind after the soak',
      value: Object.values(left).reduce((a, b) => a + b, 0),
      unit: '',
      figure: `listeners ${left.listeners} · timers ${left.timers} · tracker ${left.tracker} · pool in use ${left.poolInUse} · waiting ${left.poolWaiting}`,
      target: 'all zero',
      met: clean,
    }),
  ];
}
