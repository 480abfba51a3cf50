import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

// Reference upstreams: payment, vendor and courier services over HTTP on loopback, for
// examples/pipeline.json, the black-box tests and demonstrations. Each keeps its own
// idempotency (the same Idempotency-Key gets the same answer, and charges once), and a ledger
// of what it did (GET /ledger). Their behaviour is changed at run time with POST /control;
// UPSTREAMS_LATENCY_MS sets the latency they start with (5 ms by default).

/** Behaviour is what POST /control sets; every field optional, merged into the current one. */
export interface Behaviour {
  /** Delay before an effect is applied and answered, in milliseconds. */
  latency_ms: number;
  /** Share of requests answered 503 at random, from 0 to 1. */
  fail_rate: number;
  /** The next N requests are answered 503 with `Retry-After: retry_after_s`. */
  unavailable_next: number;
  retry_after_s: number;
  /** The next N undo requests are answered 503. */
  undo_unavailable_next: number;
  /**
   * The next N requests to apply are applied (or replayed) as usual, and then their answer is
   * lost: the connection is closed without one, as when a network drops a reply.
   */
  lose_answers_next: number;
  /** Amounts ending in these digits are refused 402 (the payment service only). */
  decline_suffix: string;
}

const defaultBehaviour: Behaviour = {
  latency_ms: 5,
  fail_rate: 0,
  unavailable_next: 0,
  retry_after_s: 1,
  undo_unavailable_next: 0,
  lose_answers_next: 0,
  decline_suffix: '13',
};

/** One request as the upstream saw it. */
interface Seen {
  readonly key: string;
  readonly action: 'apply' | 'undo';
  /** The status answered; `aborted` if the client left first, `lost` if the answer was lost. */
  status: number | 'aborted' | 'lost';
  /** True when the client closed the connection before the answer was written. */
  socketClosedEarly: boolean;
  /**
   * When the request arrived, its answer was written, or its socket closed unanswered, in
   * milliseconds on the clock the three services share (`performance.now()` of their process),
   * so that one service's answer and another's closed socket can be compared.
   */
  arrivedAt: number;
  answeredAt?: number;
  closedAt?: number;
  /** The W3C trace context the request carried, if any. */
  traceparent?: string;
}

interface Effect {
  readonly key: string;
  readonly orderId: string;
  readonly amount: number;
  undone: boolean;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * ReferenceUpstream is one service. `POST /<resource>` applies an effect keyed by its
 * `Idempotency-Key`; `POST /<resource>/<key>/<action>` undoes the effect of `<key>` (404
 * "nothing to undo" if there is none; that key is then void, so a late request with it is
 * refused 409 instead of applying an effect nobody will undo).
 */
class ReferenceUpstream {
  behaviour: Behaviour = { ...defaultBehaviour };
  readonly seen: Seen[] = [];
  readonly effects = new Map<string, Effect>();
  readonly answers = new Map<string, Answer>();
  readonly voided = new Set<string>();
  readonly server: Server;

  constructor(readonly name: 'payment' | 'vendor' | 'courier') {
    this.server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        response.statusCode = 500;
        response.end(JSON.stringify({ error: String(error) }));
      });
    });
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://upstream');
    const body = await readJson(request);
    const parts = url.pathname.split('/').filter((part) => part !== '');
    if (request.method === 'GET' && url.pathname === '/ledger') {
      send(response, 200, this.ledger());
      return;
    }
    if (request.method === 'POST' && url.pathname === '/control') {
      this.behaviour = { ...this.behaviour, ...(body as Partial<Behaviour>) };
      send(response, 200, this.behaviour);
      return;
    }
    const key = request.headers['idempotency-key'];
    if (request.method !== 'POST' || typeof key !== 'string' || key === '') {
      send(response, 400, { error: 'POST with an Idempotency-Key' });
      return;
    }
    if (parts.length === 1) return this.#apply(key, body, request, response);
    if (parts.length === 3) {
      this.#undo(key, decodeURIComponent(parts[1] ?? ''), response);
      return;
    }
    send(response, 404, { error: 'no such resource' });
  }

  async #apply(
    key: string,
    body: unknown,
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    const seen: Seen = {
      key,
      action: 'apply',
      status: 'aborted',
      socketClosedEarly: false,
      arrivedAt: clock(),
    };
    const { traceparent } = request.headers;
    if (typeof traceparent === 'string') seen.traceparent = traceparent;
    this.seen.push(seen);
    response.once('finish', () => {
      seen.answeredAt = clock();
    });
    response.once('close', () => {
      if (response.writableFinished) return;
      seen.socketClosedEarly = true;
      seen.closedAt = clock();
    });
    const replay = this.answers.get(key);
    if (replay !== undefined) {
      this.#answerApply(seen, response, replay);
      return;
    }
    const { behaviour } = this;
    if (behaviour.unavailable_next > 0) {
      behaviour.unavailable_next--;
      response.setHeader('retry-after', String(behaviour.retry_after_s));
      this.#answer(seen, response, { status: 503, body: { error: 'unavailable' } });
      return;
    }
    if (Math.random() < behaviour.fail_rate) {
      this.#answer(seen, response, { status: 503, body: { error: 'unavailable' } });
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, behaviour.latency_ms));
    // The client gave up: nothing is applied, as a real service rolls back an unanswered call.
    if (seen.socketClosedEarly || request.socket.destroyed) {
      seen.socketClosedEarly = true;
      return;
    }
    const again = this.answers.get(key);
    if (again !== undefined) {
      this.#answerApply(seen, response, again);
      return;
    }
    const order = isRecord(body) ? body : {};
    const amount = typeof order['amount'] === 'number' ? order['amount'] : 0;
    const orderId = typeof order['order_id'] === 'string' ? order['order_id'] : '';
    let answer: Answer;
    if (this.voided.has(key)) {
      answer = { status: 409, body: { error: 'this key was undone before it was applied' } };
    } else if (this.name === 'payment' && String(amount).endsWith(behaviour.decline_suffix)) {
      answer = { status: 402, body: { error: 'declined' } };
    } else {
      this.effects.set(key, { key, orderId, amount, undone: false });
      answer = { status: 201, body: { id: key } };
    }
    this.answers.set(key, answer);
    this.#answerApply(seen, response, answer);
  }

  /** answerApply answers a request to apply, unless its answer is to be lost. */
  #answerApply(seen: Seen, response: ServerResponse, answer: Answer): void {
    if (this.behaviour.lose_answers_next > 0) {
      this.behaviour.lose_answers_next--;
      seen.status = 'lost';
      response.socket?.destroy();
      return;
    }
    this.#answer(seen, response, answer);
  }

  #undo(key: string, effectKey: string, response: ServerResponse): void {
    const seen: Seen = {
      key,
      action: 'undo',
      status: 'aborted',
      socketClosedEarly: false,
      arrivedAt: clock(),
    };
    this.seen.push(seen);
    if (this.behaviour.undo_unavailable_next > 0) {
      this.behaviour.undo_unavailable_next--;
      this.#answer(seen, response, { status: 503, body: { error: 'unavailable' } });
      return;
    }
    const effect = this.effects.get(effectKey);
    if (effect === undefined) {
      this.voided.add(effectKey);
      this.#answer(seen, response, { status: 404, body: { error: 'nothing to undo' } });
      return;
    }
    effect.undone = true;
    this.#answer(seen, response, { status: 200, body: { undone: effectKey } });
  }

  #answer(seen: Seen, response: ServerResponse, answer: Answer): void {
    seen.status = answer.status;
    send(response, answer.status, answer.body);
  }

  /** ledger is what GET /ledger shows: every request seen, every effect, and the totals. */
  ledger(): unknown {
    const effects = [...this.effects.values()];
    const applied = effects.reduce((sum, effect) => sum + effect.amount, 0);
    const undone = effects
      .filter((effect) => effect.undone)
      .reduce((sum, effect) => sum + effect.amount, 0);
    return {
      service: this.name,
      requests: this.seen,
      effects,
      applied,
      undone,
      ...(this.name === 'payment' ? { charged: applied, refunded: undone } : {}),
    };
  }
}

/** clock is the services' shared clock, in milliseconds to the microsecond. */
function clock(): number {
  return Math.round(performance.now() * 1000) / 1000;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.destroyed) return;
  response.statusCode = status;
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify(body));
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RunningUpstreams are the three services, listening, with their URLs. */
export interface RunningUpstreams {
  readonly urls: Readonly<Record<'payment' | 'vendor' | 'courier', string>>;
  close(): Promise<void>;
}

/**
 * startReferenceUpstreams listens with the three services on `host`, on the given ports (0
 * picks a free one), each with `behaviour` over the default one. Rejects if a port is taken.
 */
export async function startReferenceUpstreams(
  host: string,
  ports: Readonly<Record<'payment' | 'vendor' | 'courier', number>>,
  behaviour: Partial<Behaviour> = {},
): Promise<RunningUpstreams> {
  const names = ['payment', 'vendor', 'courier'] as const;
  const services = names.map((name) => new ReferenceUpstream(name));
  for (const service of services) service.behaviour = { ...service.behaviour, ...behaviour };
  const urls = { payment: '', vendor: '', courier: '' };
  for (const service of services) {
    await new Promise<void>((resolve, reject) => {
      service.server.once('error', reject);
      service.server.listen(ports[service.name], host, () => {
        resolve();
      });
    });
    const { port } = service.server.address() as AddressInfo;
    urls[service.name] = `http://${host}:${port}`;
  }
  return {
    urls,
    close: async () => {
      await Promise.all(
        services.map(
          (service) =>
            new Promise((resolve) => {
              service.server.closeAllConnections();
              service.server.close(resolve);
            }),
        ),
      );
    },
  };
}

function portVar(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port from 0 to 65535, got ${JSON.stringify(raw)}`);
  }
  return port;
}

function latencyVar(name: string): Partial<Behaviour> {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return {};
  const latency = Number(raw);
  if (!Number.isFinite(latency) || latency < 0) {
    throw new Error(`${name} must be a number of milliseconds >= 0, got ${JSON.stringify(raw)}`);
  }
  return { latency_ms: latency };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const running = await startReferenceUpstreams(
    process.env['UPSTREAMS_HOST'] ?? '127.0.0.1',
    {
      payment: portVar('PAYMENT_PORT', 7101),
      vendor: portVar('VENDOR_PORT', 7102),
      courier: portVar('COURIER_PORT', 7103),
    },
    latencyVar('UPSTREAMS_LATENCY_MS'),
  );
  console.log(JSON.stringify({ msg: 'reference upstreams listening', ...running.urls }));
  const stop = (): void => {
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
