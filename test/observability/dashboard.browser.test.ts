import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
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

/** Every view is checked at a desktop's width and at a phone's. */
const screens = [
  { screen: 'desktop', width: 1280, height: 900 },
  { screen: 'phone', width: 420, height: 900 },
] as const;

let server: ObservedTestApp | undefined;
let browser: Browser | undefined;
let baseUrl = '';

beforeAll(async () => {
  if (!hasChromium) return;
  // Two orders at most in flight, one courier: a second order waits for the courier, a
  // third is refused.
  server = buildObservedApp({
    metrics: false,
    adminToken: operatorToken,
    maxInflightOrders: 2,
    courierPoolSize: 1,
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

function post(body: object): Promise<Response> {
  return fetch(`${baseUrl}/order`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** openPage opens the dashboard at `width` and waits for its first state. */
async function openPage(
  width: number,
  height: number,
): Promise<{ page: Page; pageErrors: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(baseUrl);
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  return { page, pageErrors };
}

/** closePage checks that nothing overflows sideways and no script failed, then closes. */
async function closePage(
  page: Page,
  pageErrors: string[],
  width: number,
  screenshot: string,
): Promise<void> {
  const scrollWidth = await page.evaluate<number>('document.documentElement.scrollWidth');
  expect(scrollWidth, `page width at ${width} px`).toBeLessThanOrEqual(width);
  mkdirSync('test-artifacts', { recursive: true });
  await page.screenshot({ path: `test-artifacts/${screenshot}.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
  await page.close();
}

/** What a bar's label looks like on the page. */
interface LabelView {
  step: string;
  /** Written beside its bar, not in it. */
  outside: boolean;
  /** Within its row's track: not cut by the page's edge. */
  fits: boolean;
  /** Drawn on top where it is (the hatching of a wait would hide it). */
  onTop: boolean;
  /** The class of what is drawn at the label's centre. */
  top: string | null;
  waits: boolean;
  background: string;
}

/**
 * labelViews, a function run in the page on a row's selector, scrolls the row into view and tells
 * how each of its bars' labels is drawn. Scrolling and measuring happen in one synchronous call:
 * the dashboard redraws its timeline on every poll, so a row found in one call may be replaced
 * before the next.
 */
const labelViews = `(selector) => {
  const row = document.querySelector(selector);
  if (row === null) return [];
  row.scrollIntoView({ block: 'center' });
  return Array.from(row.querySelectorAll('.bar'), (bar) => {
  const label = bar.querySelector('.bar-label');
  const box = label.getBoundingClientRect();
  const track = bar.parentElement.getBoundingClientRect();
  // Labels let clicks through: ask what is drawn there as if they did not.
  label.style.pointerEvents = 'auto';
  const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
  label.style.pointerEvents = '';
  return {
    step: bar.dataset.step,
    outside: bar.classList.contains('label-outside'),
    fits: box.left >= track.left - 1 && box.right <= track.right + 1,
    onTop: top === label,
    top: top === null ? null : top.className,
    waits: bar.querySelector('.wait') !== null,
    background: getComputedStyle(label).backgroundColor,
  };
  });
}`;

describe.each(screens)(
  'dashboard in a browser, $screen ($width px)',
  ({ screen, width, height }) => {
    const id = (name: string) => `${screen}-${name}`;

    it.skipIf(!hasChromium)(
      'an order sent from the form shows its failed step, its canceled steps and the cancel mark',
      async () => {
        const { page, pageErrors } = await openPage(width, height);
        expect(await page.locator('#pool-size').textContent()).toBe('1');

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
        // Each bar is labelled with its step's full name.
        expect(await row.locator('.bar-label').allTextContents()).toEqual([
          'payment',
          'vendor',
          'courier',
        ]);
        await page.locator('#kinds [data-kind="payment_declined"]').waitFor();
        // The rate is the server's count over the last 5 whole seconds.
        await expect
          .poll(async () => Number(await page.locator('#orders-rate').textContent()))
          .toBeGreaterThan(0);
        await closePage(page, pageErrors, width, `dashboard-form-${screen}`);
      },
    );

    it.skipIf(!hasChromium)(
      'draws the last minutes: orders per second by outcome, and latency p50 and p99',
      async () => {
        const { page, pageErrors } = await openPage(width, height);
        const fast = { payment: 20, vendor: 30, courier: 10 };
        for (let i = 0; i < 4; i++) {
          await post({ order_id: id(`chart-ok-${i}`), amount: 1, delay_ms: fast });
        }
        await post({
          order_id: id('chart-vendor'),
          amount: 1,
          fail_step: 'vendor',
          delay_ms: fast,
        });

        // The series counts whole seconds: the orders show once their second is over.
        const chart = page.locator('#throughput-chart');
        await expect
          .poll(async () => Number(await chart.getAttribute('data-max')))
          .toBeGreaterThan(0);
        for (const series of ['ok', 'errors', 'timeouts', 'refused']) {
          expect(await chart.locator(`path[data-series="${series}"]`).count(), series).toBe(1);
        }
        const okLine = await chart.locator('path[data-series="ok"]').getAttribute('d');
        expect(okLine?.match(/[ML]/g), 'one vertex per point').toHaveLength(60);
        const latency = page.locator('#latency-chart');
        for (const series of ['p50', 'p99']) {
          const line = await latency.locator(`path[data-series="${series}"]`).getAttribute('d');
          expect(line, series).toMatch(/^M[\d.]+ [\d.]+/);
        }
        expect(await latency.locator('.chart-top').textContent()).toMatch(/^max \d+(\.\d)? ms$/);
        // The cards read the last minute: a latency in ms and the share that failed.
        expect(await page.locator('#latency-p50').textContent()).toMatch(/^\d+(\.\d)? ms$/);
        expect(await page.locator('#latency-p99').textContent()).toMatch(/^\d+(\.\d)? ms$/);
        expect(await page.locator('#error-rate').textContent()).toMatch(/^\d+(\.\d)? %$/);
        // `ok` first and apart, the other errors after it.
        const groups = await page.evaluate<string[]>(
          "Array.from(document.querySelectorAll('#kinds .kind-group'), (node) => node.dataset.group)",
        );
        expect(groups.slice(0, 2)).toEqual(['ok', 'timeout']);
        expect(groups).toContain('errors');
        await closePage(page, pageErrors, width, `dashboard-charts-${screen}`);
      },
    );

    it.skipIf(!hasChromium)(
      'shows the overload while orders are refused, and clears it once they are not',
      async () => {
        const { page, pageErrors } = await openPage(width, height);
        expect(await page.locator('#overload-card').getAttribute('data-overloaded')).toBe('false');
        // Two orders hold both places; every other order is refused `overloaded` meanwhile.
        const holding = [1, 2].map((n) =>
          post({ order_id: id(`holds-${n}`), amount: 1, delay_ms: { payment: 1500 } }),
        );
        await expect.poll(() => server!.service.admission.inflight).toBe(2);
        const refusing = { on: true };
        const refusals = (async () => {
          for (let n = 0; refusing.on; n++) {
            expect((await post({ order_id: id(`refused-${n}`), amount: 1 })).status).toBe(503);
            await sleep(50);
          }
        })();
        try {
          await page.locator('#overload-card[data-overloaded="true"]').waitFor();
          expect(await page.locator('#overload').textContent()).toBe('overloaded');
          await page.locator('#kinds [data-group="refused"] [data-kind="overloaded"]').waitFor();
          mkdirSync('test-artifacts', { recursive: true });
          await page.screenshot({ path: `test-artifacts/dashboard-overload-${screen}.png` });
        } finally {
          refusing.on = false;
          await refusals;
          await Promise.all(holding);
        }
        await page.locator('#overload-card[data-overloaded="false"]').waitFor();
        expect(await page.locator('#overload').textContent()).toBe('accepting');
        await closePage(page, pageErrors, width, `dashboard-after-overload-${screen}`);
      },
    );

    it.skipIf(!hasChromium)(
      "counts the runs needing attention, shows a flag's age and readable error, and settles it",
      async () => {
        const { page, pageErrors } = await openPage(width, height);
        // A failed order whose payment refund fails for good: flagged for an operator.
        const orderId = id('flagged');
        await post({
          order_id: orderId,
          amount: 1,
          fail_step: 'courier',
          delay_ms: { payment: 1, vendor: 1, courier: 5 },
          fail_compensation: { payment: 1000 },
        });

        await page.locator('#attention-flagged', { hasText: '1' }).waitFor();
        expect(Number(await page.locator('#attention-count').textContent())).toBeGreaterThan(0);
        const row = page.locator('#attention tr[data-flagged="true"]');
        await row.waitFor();
        expect(await row.textContent()).toContain(orderId);
        expect(await row.locator('.age').textContent()).toMatch(/^failed \d+ s ago$/);
        const chip = row.locator('.chip.flagged');
        // What the failed attempt said, and how long ago it was flagged.
        expect(await chip.locator('.chip-error').textContent()).toBe(
          'last error: refunding the payment failed (attempt 1)',
        );
        expect(await chip.textContent()).toMatch(
          /payment: compensation_failed · 1 attempt · flagged \d+ s ago/,
        );

        // Without the token the action is refused.
        await row.locator('button.settle').click();
        await page.locator('#operator-result', { hasText: '401' }).waitFor();
        // With it, the flag is settled and the run leaves the view.
        await page.fill('#operator-token', operatorToken);
        await row.locator('button.settle').click();
        await page.locator('#operator-result', { hasText: 'settled' }).waitFor();
        await page.locator('#attention tr[data-flagged="true"]').waitFor({ state: 'detached' });
        await page.locator('#attention-flagged', { hasText: '0' }).waitFor();
        const recorded = (await (await fetch(`${baseUrl}/order/${orderId}`)).json()) as {
          needs_operator: boolean;
          steps: { name: string; compensation: string }[];
        };
        expect(recorded.needs_operator).toBe(false);
        expect(recorded.steps[0]?.compensation).toBe('settled_by_operator');
        await closePage(page, pageErrors, width, `dashboard-operator-${screen}`);
      },
    );

    it.skipIf(!hasChromium)(
      'labels every bar in full: a short bar beside it, the courier over its wait',
      async () => {
        const { page, pageErrors } = await openPage(width, height);
        // The first order holds the only courier for 600 ms: the second waits for it.
        const first = post({
          order_id: id('holds-courier'),
          amount: 1,
          delay_ms: { payment: 1, vendor: 1, courier: 600 },
        });
        await expect.poll(() => server!.service.courierPool.inUse).toBe(1);
        await post({
          order_id: id('waits'),
          amount: 1,
          delay_ms: { payment: 5, vendor: 40, courier: 100 },
        });
        await first;

        const row = page.locator(`.order-row[data-order-id="${id('waits')}"]`);
        await row.waitFor();
        expect(await row.locator('.bar-label').allTextContents()).toEqual([
          'payment',
          'vendor',
          'courier',
        ]);
        // What is drawn where is known only on the screen.
        const labels = await page.evaluate<LabelView[]>(
          `(${labelViews})('.order-row[data-order-id="${id('waits')}"]')`,
        );
        expect(labels.map((label) => label.step)).toEqual(['payment', 'vendor', 'courier']);
        const [payment, , courier] = labels;
        expect(payment, 'a 5 ms bar is too short for its label').toMatchObject({
          outside: true,
          fits: true,
          onTop: true,
        });
        expect(courier, 'the courier waited, its label over the hatching').toMatchObject({
          waits: true,
          outside: false,
          fits: true,
          onTop: true,
        });
        expect(courier?.background, 'on a dark patch').not.toBe('rgba(0, 0, 0, 0)');
        await closePage(page, pageErrors, width, `dashboard-labels-${screen}`);
      },
    );
  },
);
