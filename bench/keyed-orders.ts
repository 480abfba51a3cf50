/**
 * Keyed orders under chaos, shared by the chaos benchmark and the black-box chaos test: the
 * clients that send them, and the wait for each recorded run to settle.
 */

export interface Sent {
  readonly orderId: string;
  readonly amount: number;
}

export interface Recorded {
  readonly state: string;
  readonly status?: string;
  readonly error?: { readonly kind: string };
  readonly steps: readonly { readonly compensation: string; readonly needs_operator: boolean }[];
}

/**
 * sendKeyedOrders keeps `clients` clients sending keyed orders of random amounts to `url()`
 * until `stopped()`, each recorded in `sent` before it is sent; a tenth of them are given up by
 * their client within 60 ms, and a failed request (given up, or the service down) is followed
 * by a pause of 100 ms.
 */
export async function sendKeyedOrders(
  url: () => string,
  clients: number,
  stopped: () => boolean,
  sent: Sent[],
  prefix: string,
): Promise<void> {
  const client = async (c: number): Promise<void> => {
    for (let i = 0; !stopped(); i++) {
      const orderId = `${prefix}-${c}-${i}`;
      const amount = 1 + Math.floor(Math.random() * 999);
      sent.push({ orderId, amount });
      const controller = new AbortController();
      const timer =
        Math.random() < 0.1
          ? setTimeout(() => {
              controller.abort();
            }, Math.random() * 60)
          : undefined;
      try {
        const response = await fetch(`${url()}/order`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': `key-${orderId}` },
          body: JSON.stringify({ order_id: orderId, amount }),
          signal: controller.signal,
        });
        await response.text();
      } catch {
        // Given up, or the service is down: the order may or may not have run.
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
}

/**
 * settledRun polls `GET /order/:order_id` of the service at `url` until the run of `orderId`
 * is finished with no compensation left to the retries, and resolves with it; undefined if it
 * was never recorded. Rejects if it has not settled by `until` (performance.now()).
 */
export async function settledRun(
  url: string,
  orderId: string,
  until: number,
): Promise<Recorded | undefined> {
  for (;;) {
    const response = await fetch(`${url}/order/${encodeURIComponent(orderId)}`);
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    const run = (await response.json()) as Recorded;
    const open = run.steps.some(
      (step) =>
        step.compensation === 'pending' ||
        (step.compensation === 'compensation_failed' && !step.needs_operator),
    );
    if (run.state === 'finished' && !open) return run;
    if (performance.now() > until) throw new Error(`the run of ${orderId} did not settle`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
