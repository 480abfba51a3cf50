import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/http/app.js';
import { testService } from '../helpers.js';

const token = 'a-long-operator-token';
const apps: App[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

/** flaggedApp builds an app whose first failed order gets its payment refund flagged. */
async function flaggedApp(adminToken: string | undefined) {
  const service = testService({
    compensationMaxAttempts: 1,
    delays: { payment: 1, vendor: 1, courier: 1 },
  });
  const app = buildApp({ service, adminToken });
  app.addHook('onClose', () => service.close());
  apps.push(app);
  await app.inject({
    method: 'POST',
    url: '/order',
    payload: {
      order_id: 'f-1',
      amount: 1,
      fail_step: 'courier',
      fail_compensation: { payment: 9 },
    },
  });
  await service.ledger.idle();
  const run = await service.ledger.get('f-1');
  if (run === undefined) throw new Error('no run recorded');
  return { app, service, url: `/admin/runs/${run.runId}/compensations/payment/settle` };
}

describe('POST /admin/runs/:run_id/compensations/:step/settle', () => {
  it('settles a flagged compensation with the operator token', async () => {
    const { app, service, url } = await flaggedApp(token);
    const answer = await app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toStrictEqual({ status: 'ok' });
    const run = await service.ledger.get('f-1');
    expect(run?.compensations[0]).toMatchObject({
      status: 'settled_by_operator',
      needsOperator: false,
    });
    // Settled once: there is no flag any more.
    const again = await app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(again.statusCode).toBe(404);
  });

  it.each([
    ['no header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token-at-all' }],
    ['another scheme', { authorization: `Basic ${token}` }],
  ])('answers 401 unauthorized with %s, and settles nothing', async (_case, headers) => {
    const { app, service, url } = await flaggedApp(token);
    const answer = await app.inject({ method: 'POST', url, headers });
    expect(answer.statusCode).toBe(401);
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    expect(answer.json()).toMatchObject({ error: { kind: 'unauthorized' } });
    expect((await service.ledger.get('f-1'))?.compensations[0]?.needsOperator).toBe(true);
  });

  it('answers 401 to everyone when no operator token is configured', async () => {
    const { app, url } = await flaggedApp(undefined);
    const answer = await app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(answer.statusCode).toBe(401);
    expect(answer.json()).toMatchObject({
      error: { kind: 'unauthorized', message: 'operator actions are disabled: set ADMIN_TOKEN' },
    });
  });
});
