import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { postRaw } from '../http/support.js';
import { eventually, getOrder, postJson } from './load.js';
import { killServers, spawnServer } from './server-process.js';

// Input is validated at the edge, bytes included: nothing malformed is silently altered,
// reaches the store, or becomes a 500. Checked against the server as users run it.

afterEach(killServers);

describe('malformed text is refused before anything runs', () => {
  it('invalid UTF-8 bytes are 400, and two different invalid ids are never the same order', async () => {
    const server = spawnServer();
    const port = await server.listening();
    const body = (invalid: number) =>
      Buffer.concat([
        Buffer.from('{"order_id":"utf-'),
        Buffer.from([invalid]),
        Buffer.from('","amount":1}'),
      ]);
    for (const invalid of [0xff, 0xfe, 0xc3]) {
      const answer = await postRaw(port, body(invalid));
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.text)).toStrictEqual({
        status: 'error',
        error: { kind: 'bad_request', message: 'body is not valid UTF-8' },
      });
    }
    // Nothing was recorded under the replacement character either.
    const lookup = await fetch(
      `http://127.0.0.1:${port}/order/${encodeURIComponent('utf-\ufffd')}`,
    );
    expect(lookup.status).toBe(404);
  });

  it.each([
    ['a lone high surrogate in order_id', '{"order_id":"\\ud800","amount":1}'],
    ['a lone low surrogate in order_id', '{"order_id":"x\\udc00y","amount":1}'],
    ['a lone surrogate in a key', '{"order_id":"x","amount":1,"\\ud800":1}'],
  ])('%s is 400 bad_request, never a 500', async (_case, text) => {
    const server = spawnServer();
    const port = await server.listening();
    const answer = await postJson(port, text);
    expect(answer.status).toBe(400);
    expect(answer.body).toStrictEqual({
      status: 'error',
      error: { kind: 'bad_request', message: 'body must not contain lone surrogates' },
    });
  });

  it('a well-formed pair of surrogates (an emoji) is accepted as it is', async () => {
    const server = spawnServer();
    const port = await server.listening();
    const answer = await postJson(port, {
      order_id: 'order-\u{1F4E6}',
      amount: 1,
      delay_ms: { payment: 1, vendor: 1, courier: 1 },
    });
    expect(answer.status).toBe(200);
    expect((answer.body as { order_id: string }).order_id).toBe('order-\u{1F4E6}');
  });

  it('an Idempotency-Key of non-ASCII bytes is 400 bad_request', async () => {
    const server = spawnServer();
    const port = await server.listening();
    const answer = await postRaw(port, '{"order_id":"k","amount":1}', {
      // Latin-1 bytes on the wire, as a client may send them.
      headers: { 'idempotency-key': Buffer.from('cl\u00e9', 'latin1').toString('latin1') },
    });
    expect(answer.status).toBe(400);
  });
});

describe('the log lines the README promises, from the real server', () => {
  it('one line per request; an order whose client left is logged as canceled', async () => {
    const server = spawnServer();
    const port = await server.listening();
    await postJson(port, {
      order_id: 'logged',
      amount: 1,
      delay_ms: { payment: 1, vendor: 1, courier: 1 },
    });
    await server.waitForOutput(/"order_id":"logged".*"status":200.*"msg":"request completed"/);

    // A client that leaves mid-order.
    const leaving = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/order',
      headers: { 'content-type': 'application/json' },
    });
    leaving.on('error', () => undefined);
    leaving.end(JSON.stringify({ order_id: 'left', amount: 1, delay_ms: { payment: 60_000 } }));
    // The order is running once its start is recorded; then the client goes away.
    await eventually(async () => (await getOrder(port, 'left'))?.state === 'running' || undefined);
    leaving.destroy();
    const [line] = await server.waitForOutput(
      /\{[^\n]*"order_id":"left"[^\n]*"msg":"order canceled"[^\n]*\}/,
    );
    expect(JSON.parse(line)).toMatchObject({ level: 30, kind: 'canceled', order_id: 'left' });
  });
});
