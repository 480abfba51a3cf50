import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, postJson } from './load.js';
import { killServers, spawnServer } from './server-process.js';

const dataDirs: string[] = [];

afterEach(async () => {
  await killServers();
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The part of `GET /order/:order_id` this test reads. */
interface Run {
  readonly run_id: string;
  readonly state: string;
  readonly attempt: number;
  readonly needs_operator: boolean;
  readonly error?: { readonly kind: string };
  readonly steps: readonly { readonly name: string; readonly needs_operator: boolean }[];
}

async function getRun(port: number, orderId: string): Promise<Run | undefined> {
  const response = await fetch(`http://127.0.0.1:${port}/order/${orderId}`);
  return response.status === 404 ? undefined : ((await response.json()) as Run);
}

const adminToken = 'operator-token-of-the-test';

describe('a keyed order killed with SIGKILL whose compensation is flagged for an operator', () => {
  it('its repeat is answered from the record with order-needs-operator, not 409 for ever; once the operator settles the flag it runs anew', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'order-pipeline-flagged-'));
    dataDirs.push(dataDir);
    const env = {
      DATA_DIR: dataDir,
      COMPENSATION_MAX_ATTEMPTS: '1',
      REQUEST_TIMEOUT_MS: '10000',
      ADMIN_TOKEN: adminToken,
    };
    // The refund fails its one attempt; the vendor takes long enough to kill the server.
    const body = {
      order_id: 'flagged-1',
      amount: 10,
      delay_ms: { payment: 0, vendor: 2000, courier: 0 },
      fail_compensation: { payment: 1 },
    };
    const keyed = { 'idempotency-key': 'flagged-key-1' };

    const first = spawnServer(env);
    const firstPort = await first.listening();
    const lost = postJson(firstPort, body, keyed).catch(() => undefined);
    await eventually(async () =>
      (await getRun(firstPort, body.order_id))?.state === 'running' ? true : undefined,
    );
    first.child.kill('SIGKILL');
    await first.exited;
    await lost;

    // The next server recovers it as interrupted; the refund fails and is flagged.
    const second = spawnServer(env);
    const port = await second.listening();
    const flagged = await eventually(async () => {
      const run = await getRun(port, body.order_id);
      return run?.needs_operator === true ? run : undefined;
    });
    expect([flagged.state, flagged.error?.kind], 'recovered').toEqual(['finished', 'interrupted']);

    for (const attempt of ['first repeat', 'second repeat']) {
      const repeat = await postJson(port, body, keyed);
      expect(repeat.status, attempt).toBe(503);
      expect(repeat.body, attempt).toMatchObject({
        status: 'error',
        order_id: body.order_id,
        error: { kind: 'interrupted' },
      });
      expect(
        [
          repeat.headers.get('idempotent-replayed'),
          repeat.headers.get('order-needs-operator'),
          repeat.headers.get('retry-after'),
        ],
        `${attempt}: replayed, flagged, no Retry-After`,
      ).toEqual(['true', 'true', null]);
    }
    expect((await getRun(port, body.order_id))?.attempt, 'nothing ran again').toBe(1);

    const settled = await fetch(
      `http://127.0.0.1:${port}/admin/runs/${flagged.run_id}/compensations/payment/settle`,
      { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } },
    );
    expect(settled.status, 'settled').toBe(200);

    const rerun = await postJson(port, body, keyed);
    expect(rerun.status, 'run anew').toBe(200);
    expect(
      [rerun.headers.get('idempotent-replayed'), rerun.headers.get('order-needs-operator')],
      'a fresh answer',
    ).toEqual([null, null]);
    const after = await getRun(port, body.order_id);
    expect([after?.attempt, after?.state, after?.needs_operator], 'attempt 2').toEqual([
      2,
      'finished',
      false,
    ]);
  }, 60_000);
});
