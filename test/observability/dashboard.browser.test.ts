import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildObservedApp, type ObservedTestApp } from './observed-app.js';

/** Debian's Chromium; `.ci/run` installs it when it can. */
const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const hasChromium = existsSync(chromiumPath);
if (!hasChromium) {
  console.warn(
    `SKIPPED dashboard browser test: no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
}

const launchArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

const operatorToken = 'operator-token-for-the-test';

describe('dashboard in a browser', () => {
  let server: ObservedTestApp | undefined;
  let browser: Browser | undefined;
  let baseUrl = '';

  beforeAll(async () => {
    if (!hasChromium) return;
    server = buildObservedApp({
      metrics: false,
      adminToken: operatorToken,
      maxInflightOrders: 1,
      compensationMaxAttempts: 1,
    });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = server.app.server.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({ executablePath: chromiumPath, args: launchArgs });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.app.close();
  });

  it.skipIf(!hasChromium)(
    'an order sent from the form shows its failed step, its canceled steps and the cancel mark',
    async () => {
      const page = await browser!.newPage({ viewport: { width: 1200, height: 800 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(baseUrl);
      await page.locator('#connection', { hasText: 'live' }).waitFor();
      expect(await page.locator('#pool-size').textContent()).toBe('5');

      await page.selectOption('select[name="fail_step"]', 'payment');
      await page.fill('input[name="payment"]', '30');
      await page.fill('input[name="vendor"]', '400');
      await page.fill('input[name="courier"]', '400');
      await page.click('button[type="submit"]');
      await page.locator('#order-result', { hasText: '400 error (payment_declined)' }).waitFor();

      const row = page.locator('.order-row[data-status="error"]').first();
      await row.waitFor();
      const barStatuses = async (): Promise<(string | null)[]> =>
        Promise.all(
          (await row.locator('.bar').all()).map((bar) => bar.getAttribute('data-status')),
        );
      await expect.poll(barStatuses).toEqual(['error', 'canceled', 'canceled']);
      expect(await row.locator('.cancel-mark').count()).toBe(1);
      expect(await row.locator('.order-label').textContent()).toContain('payment_declined');
      expect(await page.locator('#outcomes').textContent()).toContain('payment_declined');

      // Each bar is labelled with its step.
      expect(await row.locator('.bar-label').allTextContents()).toEqual([
        'payment',
        'vendor',
        'courier',
      ]);
      // The rate is the server's count over the last 5 s.
      await expect
        .poll(async () => Number(await page.locator('#orders-rate').textContent()))
        .toBeGreaterThan(0);

      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });
      expect(pageErrors).toEqual([]);
      await page.close();
    },
  );

  it.skipIf(!hasChromium)(
    'shows refusals and flagged compensations; the operator settles a flag with the token',
    async () => {
      const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      const post = (body: object) =>
        fetch(`${baseUrl}/order`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      // One order holds the only place; the next is refused `overloaded`.
      const holding = post({ order_id: 'holds', amount: 1, delay_ms: { payment: 600 } });
      await expect.poll(() => server!.service.admission.inflight).toBe(1);
      expect((await post({ order_id: 'refused', amount: 1 })).status).toBe(503);
      await holding;
      // A failed order whose payment refund fails for good: flagged for an operator.
      await post({
        order_id: 'flagged',
        amount: 1,
        fail_step: 'courier',
        delay_ms: { payment: 1, vendor: 1, courier: 5 },
        fail_compensation: { payment: 1000 },
      });

      await page.goto(baseUrl);
      await page.locator('#connection', { hasText: 'live' }).waitFor();
      await page.locator('#refused-overloaded', { hasText: '1' }).waitFor();
      const row = page.locator('#attention tr[data-flagged="true"]');
      await row.waitFor();
      expect(await row.textContent()).toContain('flagged');
      expect(await row.locator('.chip.flagged').textContent()).toContain('payment');

      // Without the token the action is refused.
      await row.locator('button.settle').click();
      await page.locator('#operator-result', { hasText: '401' }).waitFor();
      // With it, the flag is settled and the run leaves the view.
      await page.fill('#operator-token', operatorToken);
      await row.locator('button.settle').click();
      await page.locator('#operator-result', { hasText: 'settled' }).waitFor();
      await page.locator('#attention tr[data-flagged="true"]').waitFor({ state: 'detached' });
      const recorded = (await (await fetch(`${baseUrl}/order/flagged`)).json()) as {
        needs_operator: boolean;
        steps: { name: string; compensation: string }[];
      };
      expect(recorded.needs_operator).toBe(false);
      expect(recorded.steps[0]?.compensation).toBe('settled_by_operator');

      await page.screenshot({ path: 'test-artifacts/dashboard-operator.png', fullPage: true });
      expect(pageErrors).toEqual([]);
      await page.close();
    },
  );
});
