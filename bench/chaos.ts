import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { row, type Row } from './report.js';
import { sendKeyedOrders, settledRun, type Sent } from './keyed-orders.js';
import { startServer, type BenchServer } from './server-process.js';
import { pipelineFile, startUpstreams, type UpstreamsProcess } from './upstreams.js';

/**
 * Money under chaos: the default configuration with the reference upstreams
 * (`examples/pipeline.json`) failing at random (payment and vendor 20% of requests, courier
 * 10%), the vendor down altogether for a second (its breaker opens), 32 clients sending keyed
 * orders of random amounts of which a tenth give up after a few milliseconds, and the service
 * killed with SIGKILL under load and started again on its data directory. Once every run has
 * settled, the payment upstream must have charged each key at most once, and charged −
 * refunded must be the sum of the amounts of the orders recorded `ok`: nothing charged twice,
 * nothing left charged for an order that failed or was interrupted.
 */

const clients = 32;

const pause = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

export async function chaosBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const phaseMs = options.quick ? 1000 : 4000;
  const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-chaos-'));
  const upstreams: UpstreamsProcess = await startUpstreams(1);
  const servers: BenchServer[] = [];
  // Set when the load is to stop: at its end, or when anything fails before it.
  let stopped = false;
  try {
    await upstreams.control('payment', { fail_rate: 0.2, latency_ms: 20 });
    await upstreams.control('vendor', { fail_rate: 0.2, latency_ms: 10 });
    await upstreams.control('courier', { fail_rate: 0.1, latency_ms: 30 });
    const env = {
      DATA_DIR: dataDir,
      PIPELINE_FILE: pipelineFile,
      PAYMENT_URL: upstreams.urls.payment,
      VENDOR_URL: upstreams.urls.vendor,
      COURIER_URL: upstreams.urls.courier,
      COMPENSATION_RETRY_BASE_MS: '100',
    };
    const start = async (): Promise<BenchServer> => {
      const server = await startServer(env, { pin: false });
      servers.push(server);
      return server;
    };
    let server = await start();
    const sent: Sent[] = [];
    const sending = sendKeyedOrders(
      () => server.url,
      clients,
      () => stopped,
      sent,
      `chaos-${process.pid}`,
    );
    await pause(phaseMs / 2);
    // The vendor goes down for a second: its breaker opens, then closes again.
    await upstreams.control('vendor', { fail_rate: 1 });
    await pause(1000);
    await upstreams.control('vendor', { fail_rate: 0.2 });
    await pause(phaseMs / 2);
    await server.kill();
    server = await start();
    const restartedAt = performance.now();
    await pause(phaseMs);
    stopped = true;
    await sending;

    const kinds = new Map<string, number>();
    let okAmounts = 0;
    let flagged = 0;
    const until = performance.now() + 60_000;
    for (const { orderId, amount } of sent) {
      const run = await settledRun(server.url, orderId, until);
      const kind = run === undefined ? 'not recorded' : (run.error?.kind ?? 'ok');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      if (run?.status === 'ok') okAmounts += amount;
      if (run?.steps.some((step) => step.needs_operator) === true) flagged++;
    }
    const settledSeconds = (performance.now() - restartedAt) / 1000;
    const payment = await upstreams.effects('payment');
    const perKey = new Map<string, number>();
    for (const effect of payment.effects) perKey.set(effect.key, (perKey.get(effect.key) ?? 0) + 1);
    const charged = payment.charged ?? 0;
    const refunded = payment.refunded ?? 0;
    const twice = [...perKey.values()].filter((count) => count > 1).length;
    const conserved = charged - refunded === okAmounts;
    const outcomes = [...kinds]
      .sort((a, b) => b[1] - a[1])
      .map(([kind, count]) => `${kind} ${count}`)
      .join(' · ');
    return [
      row({
        section: 'chaos',
        scenario: `money under chaos: ${clients} clients, random upstream failures, a vendor outage, client aborts, kill -9 mid-load`,
        value: charged - refunded,
        unit: 'charged',
        figure: `charged − refunded ${charged - refunded} · ok orders ${okAmounts} (${conserved ? 'equal' : 'NOT equal'})`,
        baseline: `${sent.length} orders sent: ${outcomes}`,
        compare: `keys charged twice ${twice} · runs flagged ${flagged} · all settled ${settledSeconds.toFixed(1)} s after the restart`,
        target: 'charged − refunded = ok orders, no key charged twice',
        met: conserved && twice === 0,
      }),
    ];
  } finally {
    stopped = true;
    for (const server of servers) await server.stop().catch(() => undefined);
    await upstreams.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
