import { Pool, type Dispatcher } from 'undici';

/**
 * The transport's floor: what undici alone costs for an order's three upstream calls. A
 * process with nothing else in it sends, `rate` times a second, the three requests an order
 * of examples/pipeline.json sends (same methods, paths, headers and body sizes, a fresh
 * `Idempotency-Key` each) through one keep-alive pool per upstream, as the service does, and
 * reads each answer whole. Run by the upstreams section, pinned to the server's core, as
 * `node bare-undici-client.js <payment> <vendor> <courier> <rate> <seconds> <warm-up seconds>`;
 * prints `{"cpuMsPerOrder": …, "orders": …, "failed": …}` (user + system time per three calls).
 */

const [paymentUrl = '', vendorUrl = '', courierUrl = '', ...numbers] = process.argv.slice(2);
const [rate = 1000, seconds = 10, warmUp = 2] = numbers.map(Number);

interface Call {
  readonly pool: Pool;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: (key: string) => string;
}

const details = { note: 'ring twice', address: { street: 'Main St 1' } };
const calls: readonly Call[] = [
  {
    pool: new Pool(paymentUrl, { connections: 64 }),
    path: '/charges',
    headers: { authorization: 'Bearer reference-token' },
    body: (key) => JSON.stringify({ order_id: key, amount: 1250, details }),
  },
  {
    pool: new Pool(vendorUrl, { connections: 64 }),
    path: '/notifications',
    headers: {},
    body: (key) => JSON.stringify({ order_id: key, amount: 1250, note: details.note }),
  },
  {
    pool: new Pool(courierUrl, { connections: 64 }),
    path: '/assignments',
    headers: {},
    body: (key) => JSON.stringify({ order_id: key, address: details.address }),
  },
];

let failed = 0;

/** Exchange reads one answer whole and counts it failed unless it is 2xx. */
class Exchange implements Dispatcher.DispatchHandler {
  #status = 0;
  onRequestStart(): void {}
  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.#status = statusCode;
  }
  onResponseData(): void {}
  onResponseEnd(): void {
    if (this.#status < 200 || this.#status > 299) failed++;
  }
  onResponseError(): void {
    failed++;
  }
}

let sequence = 0;

function sendOrder(): void {
  const orderId = `bare-${process.pid}-${++sequence}`;
  for (const call of calls) {
    call.pool.dispatch(
      {
        method: 'POST',
        path: call.path,
        headers: {
          ...call.headers,
          'content-type': 'application/json',
          'idempotency-key': `${orderId}:${call.path}`,
        },
        body: call.body(orderId),
      },
      new Exchange(),
    );
  }
}

/** sendFor sends `rate` orders a second for `ms`, on a 1 ms tick; answers how many it sent. */
async function sendFor(ms: number): Promise<number> {
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= ms) return sent;
    const due = Math.floor((elapsed / 1000) * rate);
    for (; sent < due; sent++) sendOrder();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

await sendFor(warmUp * 1000);
const before = process.cpuUsage();
const orders = await sendFor(seconds * 1000);
const used = process.cpuUsage(before);
await Promise.all(calls.map((call) => call.pool.close()));
process.stdout.write(
  `${JSON.stringify({ cpuMsPerOrder: (used.user + used.system) / 1000 / orders, orders, failed })}\n`,
);
