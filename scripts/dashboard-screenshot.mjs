#!/usr/bin/env node
// Takes the dashboard's screenshot (docs/dashboard.png) against the real server: starts
// dist/src/server.js as `npm start` does, on the in-memory store with a small courier pool,
// sends it a minute's traffic of every kind — successes, declined payments, vendor failures,
// timeouts, an overload burst and a compensation flagged for an operator — and photographs
// the page in Chromium at desktop width during a second burst, so the overload shows.
//
//   npm run build && node scripts/dashboard-screenshot.mjs [out.png]
//
// CHROMIUM_PATH overrides /usr/bin/chromium.
/* global fetch */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = process.argv[2] ?? 'docs/dashboard.png';
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const operatorToken = 'dashboard-screenshot-operator';
/** How long the steady traffic runs before the picture, in ms. */
const trafficMs = 45_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ['--max-semi-space-size=64', 'dist/src/server.js'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: {
    ...process.env,
    HOST: '127.0.0.1',
    PORT: String(port),
    ORDER_STORE: 'memory',
    COURIER_POOL_SIZE: '6',
    MAX_INFLIGHT_ORDERS: '60',
    COMPENSATION_MAX_ATTEMPTS: '2',
    COMPENSATION_RETRY_BASE_MS: '1',
    ADMIN_TOKEN: operatorToken,
    LOG_LEVEL: 'warn',
  },
});
const exited = new Promise((resolve) => server.once('exit', resolve));

let sent = 0;
const answers = new Map();
async function order(body) {
  sent++;
  const response = await fetch(`${base}/order`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ order_id: `demo-${sent}`, amount: 1200, ...body }),
  });
  await response.arrayBuffer();
  answers.set(response.status, (answers.get(response.status) ?? 0) + 1);
}

const between = (low, high) => low + Math.floor(Math.random() * (high - low));
/** One order of the steady traffic: mostly successes, some of each failure. */
function steadyOrder() {
  const delay_ms = { payment: between(20, 90), vendor: between(40, 160), courier: between(20, 90) };
  const draw = Math.random();
  if (draw < 0.05) return { fail_step: 'payment', delay_ms };
  if (draw < 0.09) return { fail_step: 'vendor', delay_ms };
  if (draw < 0.11) return { delay_ms: { ...delay_ms, vendor: 2500 } };
  return { delay_ms };
}

/** A burst of `count` orders at once, longer than the couriers can serve: most are refused. */
function burst(count) {
  return Promise.all(
    Array.from({ length: count }, () =>
      order({ delay_ms: { payment: 50, vendor: 80, courier: 400 } }),
    ),
  );
}

let browser;
try {
  for (let tries = 0; ; tries++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // Not listening yet.
    }
    if (tries > 100) throw new Error('the server did not start within 10 s');
    await sleep(100);
  }

  const started = Date.now();
  let steady = true;
  const clients = Array.from({ length: 6 }, async () => {
    while (steady) {
      await order(steadyOrder());
      await sleep(between(20, 80));
    }
  });
  await sleep(trafficMs / 3);
  await burst(400);
  // A refund that fails on every attempt: flagged for an operator after the second.
  await order({
    fail_step: 'courier',
    delay_ms: { payment: 30, vendor: 40, courier: 60 },
    fail_compensation: { payment: 1000 },
  });
  await sleep(started + trafficMs - Date.now());

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1480 } });
  await page.goto(base);
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  // The second burst: the picture is taken while admission sheds it.
  const second = burst(400);
  await page.locator('#overload-card[data-overloaded="true"]').waitFor();
  await page.locator('#attention-flagged', { hasText: '1' }).waitFor();
  // Two polls, so every part is drawn from the same moment.
  await sleep(1100);
  await page.screenshot({ path: out });
  await second;
  steady = false;
  await Promise.all(clients);
  console.log(
    `${out}: ${sent} orders sent, answered ${JSON.stringify(Object.fromEntries(answers))}`,
  );
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  await exited;
}
