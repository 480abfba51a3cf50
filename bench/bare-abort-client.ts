import http from 'node:http';

/**
 * The abort's baseline without the service: for each of `orders` orders, a bare node:http
 * client sends the payment request (declined) and the vendor's at once, keyed
 * `bare-<concurrency>-<i>:<upstream>`, and destroys the vendor's request when the payment's
 * answer ends; `concurrency` orders at a time. Run by the upstreams section as
 * `node bare-abort-client.js <payment url> <vendor url> <orders> <concurrency>`, pinned to the
 * server's core: the same cores and the same crossings between them as the service's path.
 */

const [paymentUrl = '', vendorUrl = '', ordersArg = '0', concurrencyArg = '1'] =
  process.argv.slice(2);
const orders = Number(ordersArg);
const concurrency = Number(concurrencyArg);

const agent = new http.Agent({ keepAlive: true, maxSockets: 2 * concurrency });
const body = JSON.stringify({ amount: 113 });
const headers = (key: string): http.OutgoingHttpHeaders => ({
  'content-type': 'application/json',
  'idempotency-key': key,
});

function abortOne(i: number): Promise<void> {
  const vendor = http.request(`${vendorUrl}/notifications`, {
    method: 'POST',
    agent,
    headers: headers(`bare-${concurrency}-${i}:vendor`),
  });
  vendor.on('error', () => undefined);
  vendor.end(body);
  return new Promise<void>((resolve, reject) => {
    const payment = http.request(
      `${paymentUrl}/charges`,
      { method: 'POST', agent, headers: headers(`bare-${concurrency}-${i}:payment`) },
      (response) => {
        response.resume();
        response.on('end', () => {
          vendor.destroy();
          resolve();
        });
      },
    );
    payment.on('error', reject);
    payment.end(body);
  });
}

let next = 0;
const worker = async (): Promise<void> => {
  while (next < orders) await abortOne(next++);
};
await Promise.all(Array.from({ length: concurrency }, worker));
agent.destroy();
