import http from 'node:http';
import net from 'node:net';
import { row, type Row } from './report.js';
import { metrics, post, startServer, type BenchServer } from './server-process.js';

/**
 * Memory per in-flight order: open N keep-alive connections, each with one slow order in
 * flight, and divide the server's RSS growth (and heap growth, as its metrics report it)
 * by N. The figure includes the connection, as the Go figure does.
 */

/** heldOrder is the raw request of one slow order; each has its own id, as a repeated id is
 * answered from the service's record. */
function heldOrder(id: number): string {
  const body = JSON.stringify({
    order_id: `held-${id}`,
    amount: 100,
    delay_ms: { payment: 60_000, vendor: 60_000, courier: 60_000 },
  });
  return (
    `POST /order HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.off('error', reject);
      socket.on('error', () => {
        // The server may reset held connections when it stops.
      });
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** heapUsed reads the server's heap from its Prometheus metrics; NaN if not exposed. */
const heapUsed = async (server: BenchServer): Promise<number> =>
  (await metrics(server))('nodejs_heap_size_used_bytes');

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * warmUp runs 500 quick orders through the server, 50 at a time, so the code the held orders
 * run is compiled before the idle RSS is read: compiled code would otherwise count as memory
 * of the orders.
 */
async function warmUp(server: BenchServer): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
  const body = { amount: 100, delay_ms: { payment: 1, vendor: 1, courier: 1 } };
  try {
    let left = 500;
    const worker = async (): Promise<void> => {
      while (left-- > 0) await post(`${server.url}/order`, body, agent);
    };
    await Promise.all(Array.from({ length: 50 }, worker));
  } finally {
    agent.destroy();
  }
}

async function inFlight(count: number): Promise<{ rss: number; heap: number }> {
  const server = await startServer({ COURIER_POOL_SIZE: '128', REQUEST_TIMEOUT_MS: '600000' });
  const sockets: net.Socket[] = [];
  try {
    await warmUp(server);
    await pause(300);
    const rssBefore = server.rssBytes();
    const heapBefore = await heapUsed(server);
    for (let opened = 0; opened < count;) {
      const batch = Math.min(250, count - opened);
      const batchSockets = await Promise.all(
        Array.from({ length: batch }, () => connect(server.port)),
      );
      batchSockets.forEach((socket, i) => socket.write(heldOrder(opened + i)));
      sockets.push(...batchSockets);
      opened += batch;
    }
    // Let the single-core server read and start every order, then let its heap settle.
    await pause(Math.max(1000, count / 2));
    const rss = (server.rssBytes() - rssBefore) / count;
    const heap = ((await heapUsed(server)) - heapBefore) / count;
    return { rss, heap };
  } finally {
    for (const socket of sockets) socket.destroy();
    await server.stop();
  }
}

export async function memoryBenchmarks(options: { quick: boolean }): Promise<Row[]> {
  const counts = options.quick ? [500, 2000] : [2000, 8000];
  const rows: Row[] = [];
  for (const count of counts) {
    const { rss, heap } = await inFlight(count);
    const atTarget = count === 8000;
    rows.push(
      row({
        section: 'memory',
        scenario: `per in-flight order incl. its connection, ${count.toLocaleString('en-US')} in flight`,
        value: rss / 1024,
        unit: 'KB',
        figure: `${(rss / 1024).toFixed(1)} KB RSS`,
        baseline: 'idle server',
        compare: Number.isNaN(heap) ? 'heap n/a' : `${(heap / 1024).toFixed(1)} KB heap`,
        target: atTarget ? '≤ 20 KB RSS' : '',
        met: atTarget ? rss / 1024 <= 20 : undefined,
      }),
    );
  }
  return rows;
}
