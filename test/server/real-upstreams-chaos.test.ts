import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sendKeyedOrders, settledRun, type Sent } from '../../bench/keyed-orders.js';
import { eventually } from './load.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';
import {
  killUpstreams,
  pipelineFile,
  removePipelineFiles,
  startUpstreams,
} from './upstreams-process.js';

// Money is conserved whatever happens: the reference upstreams fail at random, clients give
// up, and the service is killed with SIGKILL under load and started again on its store. Once
// every run has settled, the payment upstream has charged each key at most once, and what it
// charged minus what it refunded is exactly the amounts of the orders recorded ok.

const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-chaos-'));

afterAll(async () => {
  await killServers();
  await killUpstreams();
  removePipelineFiles();
  rmSync(dataDir, { recursive: true, force: true });
});

function started(env: Record<string, string>): ServerProcess {
  return spawnServer({ ...env, DATA_DIR: dataDir, COMPENSATION_RETRY_BASE_MS: '100' });
}

describe('real upstreams under chaos', () => {
  it('conserves money through random failures, client aborts and a kill -9 mid-load', async () => {
    const upstreams = await startUpstreams();
    await upstreams.control('payment', { fail_rate: 0.2, latency_ms: 20 });
    await upstreams.control('vendor', { fail_rate: 0.2, latency_ms: 10 });
    await upstreams.control('courier', { fail_rate: 0.1, latency_ms: 30 });
    // Breakers that open only after a long run of failures: an open one would fail every order
    // at once, and the kill might then find none in flight.
    const file = pipelineFile((pipeline) => {
      for (const step of pipeline.steps) {
        step['breaker'] = { consecutive_failures: 50, half_open_after_ms: 1000 };
      }
    });
    const env = { PIPELINE_FILE: file, ...upstreams.env };

    const first = started(env);
    let port = await first.listening();
    const sent: Sent[] = [];
    let stopping = false;
    const running = sendKeyedOrders(
      () => `http://127.0.0.1:${port}`,
      8,
      () => stopping,
      sent,
      'chaos',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The courier holds its answers, and the kill comes once one of its requests is in
    // flight: at least that order is interrupted.
    await upstreams.control('courier', { latency_ms: 3000 });
    await eventually(async () => {
      const { requests } = await upstreams.ledger('courier');
      const inFlight = requests.some(
        (request) =>
          request.action === 'apply' && request.status === 'aborted' && !request.socketClosedEarly,
      );
      return inFlight ? true : undefined;
    });
    first.child.kill('SIGKILL');
    await first.exited;
    await upstreams.control('courier', { latency_ms: 30 });
    const second = started(env);
    port = await second.listening();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    stopping = true;
    await running;

    let okAmounts = 0;
    let ok = 0;
    const kinds = new Map<string, number>();
    for (const { orderId, amount } of sent) {
      const run = await settledRun(`http://127.0.0.1:${port}`, orderId, performance.now() + 30_000);
      const kind = run === undefined ? 'not recorded' : (run.error?.kind ?? 'ok');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      if (run?.status === 'ok') {
        okAmounts += amount;
        ok++;
      }
      expect(run?.steps.some((step) => step.needs_operator) ?? false, orderId).toBe(false);
    }
    const payment = await upstreams.ledger('payment');
    const charges = new Map<string, number>();
    for (const effect of payment.effects)
      charges.set(effect.key, (charges.get(effect.key) ?? 0) + 1);
    expect([...charges.values()].every((count) => count === 1)).toBe(true);
    expect(ok, 'some orders succeeded').toBeGreaterThan(0);
    expect(ok, 'some orders failed').toBeLessThan(sent.length);
    console.log(
      `chaos: ${sent.length} orders sent, ${JSON.stringify(Object.fromEntries(kinds))}; ` +
        `payment charged ${payment.charged ?? 0}, refunded ${payment.refunded ?? 0}, ` +
        `ok orders ${okAmounts}`,
    );
    expect(kinds.get('interrupted') ?? 0, 'the kill interrupted orders').toBeGreaterThan(0);
    expect((payment.charged ?? 0) - (payment.refunded ?? 0)).toBe(okAmounts);
  }, 90_000);
});
