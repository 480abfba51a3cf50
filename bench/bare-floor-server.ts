import http from 'node:http';

/**
 * The bare floor: a `node:http` server that does for `POST /order` what any JSON service must
 * — read the body, parse it, answer a JSON body the size and shape of an order's answer on a
 * keep-alive connection — and nothing else: no framework, validation, store, log or
 * metric. Run by the cpu section as `node bare-floor-server.js <port>`; prints `listening`.
 */

const answer = (orderId: string): string =>
  JSON.stringify({
    status: 'ok',
    order_id: orderId,
    steps: [
      { name: 'payment', status: 'ok', duration_ms: 1 },
      { name: 'vendor', status: 'ok', duration_ms: 1 },
      { name: 'courier', status: 'ok', duration_ms: 1 },
    ],
  });

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    let orderId = '';
    try {
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (typeof body === 'object' && body !== null && 'order_id' in body) {
        orderId = String(body.order_id);
      }
    } catch {
      response.writeHead(400).end();
      return;
    }
    const payload = answer(orderId);
    response.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
    });
    response.end(payload);
  });
});

server.listen(Number(process.argv[2]), '127.0.0.1', () => {
  process.stdout.write('listening\n');
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
