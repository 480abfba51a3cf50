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

describe('dashboard in a browser', () => {
  let server: ObservedTestApp | undefined;
  let browser: Browser | undefined;
  let baseUrl = '';

  beforeAll(async () => {
    if (!hasChromium) return;
    server = buildObservedApp({ metrics: false });
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

      mkdirSync('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });
      expect(pageErrors).toEqual([]);
      await page.close();
    },
  );
});
