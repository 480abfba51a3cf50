import { afterEach, describe, expect, it } from 'vitest';
import { postOrder, withoutDurations } from '../http/support.js';
import { killServers, spawnServer, type ServerProcess } from './server-process.js';

afterEach(killServers);

/** startServerProcess spawns the server in its default configuration, logging at debug. */
function startServerProcess(env: Record<string, string>): ServerProcess {
  return spawnServer({ LOG_LEVEL: 'debug', ...env });
}

describe('the server process', () => {
  it('serves orders, and on SIGTERM lets the order in flight finish with 200, then exits 0', async () => {
    const server = startServerProcess({});
    const port = await server.listening();

    const inFlight = postOrder(port, {
      order_id: 'drain-1',
      amount: 500,
      delay_ms: { payment: 600, vendor: 0, courier: 0 },
    });
    // The order is running before the process turns to the signal.
    await server.waitForOutput(/"msg":"order received"/);
    const signaledAt = performance.now();
    server.child.kill('SIGTERM');

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(withoutDurations(answer.body)).toStrictEqual({
      status: 'ok',
      order_id: 'drain-1',
      steps: [
        { name: 'payment', status: 'ok' },
        { name: 'vendor', status: 'ok' },
        { name: 'courier', status: 'ok' },
      ],
    });
    await expect(server.exited).resolves.toStrictEqual({ code: 0, signal: null });
    // It waited for the order, and no longer than the order's deadline.
    expect(performance.now() - signaledAt).toBeLessThan(2000 + 1500);
    expect(server.output()).toMatch(/shut down cleanly/);
  });

  it.each([
    { variable: 'PORT', value: 'abc' },
    { variable: 'COURIER_POOL_SIZE', value: '0' },
  ])(
    'refuses to start with $variable=$value, exiting non-zero with the reason',
    async ({ variable, value }) => {
      const server = startServerProcess({ [variable]: value });
      const { code } = await server.exited;
      expect(code).not.toBe(0);
      expect(server.output()).toContain(`${variable} must be an integer`);
      expect(server.output()).not.toMatch(/Server listening/);
    },
  );
});

describe('the test runtime', () => {
  const expectedMajor = process.env['EXPECT_NODE_MAJOR'];

  // CI runs the suite again on Node 22 and 24 and sets EXPECT_NODE_MAJOR to prove it.
  it.skipIf(expectedMajor === undefined)('is the Node version CI asked for', () => {
    console.log(`test worker runs on Node ${process.version} (${process.execPath})`);
    expect(process.versions.node.split('.')[0]).toBe(expectedMajor);
  });
});
