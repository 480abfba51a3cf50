import { randomUUID } from 'node:crypto';
import { BrokenCircuitError, CircuitState } from 'cockatiel';
import type { Cancellation } from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import { sleep } from '../core/sleep.js';
import { OrderError, kindMessage } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { RunInfo, Step } from '../order/step.js';
import type { PipelinePlan, UpstreamCall } from './pipeline-file.js';
import { renderBody, renderText, type TemplateValues } from './template.js';
import { TransientFailure, type Upstreams } from './upstreams.js';
import { messageOf } from '../core/message-of.js';

export interface HttpStepsOptions {
  /** The validated pipeline file. */
  readonly plan: PipelinePlan;
  /** The pools and breakers the steps share. */
  readonly upstreams: Upstreams;
  /** The courier pool: a step with `courier_slot` holds one slot while it runs. */
  readonly courierPool: Pool;
  /** Jitter source in [0, 1); `Math.random` by default. */
  readonly random?: (() => number) | undefined;
  /**
   * The trace context headers (W3C `traceparent`) of step `step` of the running order whose
   * steps share `cancel`, sent with each of the step's requests; undefined, or answering
   * undefined, sends none. Tracing passes it when on (Observability's `traceHeaders`).
   */
  readonly traceHeaders?:
    | ((cancel: Cancellation, step: string) => Readonly<Record<string, string>> | undefined)
    | undefined;
}

/** An attempt never starts with less than this left before the order's deadline. */
const minAttemptMs = 20;

/**
 * httpSteps builds one step per step of the pipeline file, each calling its upstream over
 * HTTP. A step's `run`:
 * - sends its request with `Idempotency-Key: <run id>:<step>` (the ledger's run id, the same
 *   across retries and after a recovery, so the upstream applies it once) and, when tracing
 *   is on, `traceparent`;
 * - retries transient failures (transient statuses, no answer, the attempt's timeout) with
 *   exponential backoff and jitter, honouring `Retry-After`, while attempts remain and the
 *   next one can start before the order's deadline (`minAttemptMs` left); each attempt's
 *   timeout is the smaller of its own and the time left; then fails with its unavailable kind;
 * - fails at once, never retried, with the kind of a refusal status (402 → `payment_declined`),
 *   with `internal` for a status the file does not classify, and with its unavailable kind
 *   while the upstream's breaker is open (or half-open, its probe in flight);
 * - on the order's cancellation aborts the request in flight, which closes its socket, and
 *   resolves: the upstream may have applied it, so the step counts as done and the saga undoes
 *   it (an undo answered "nothing to undo" counts as done). Aborted between attempts, or
 *   before its first request, it rejects with `cancel.reason`.
 * A step with a compensation request gets `compensate`: one request per attempt, keyed
 * `<run id>:<step>:undo`; success, or a "nothing to undo" status (404, 410), resolves; anything
 * else rejects, and the saga retries it.
 */
export function httpSteps(options: HttpStepsOptions): Step<Order>[] {
  const random = options.random ?? Math.random;
  const { traceHeaders } = options;
  return options.plan.steps.map((plan) => {
    const breaker = options.upstreams.breakerFor(plan);
    const { upstreams } = options;
    const send = (
      call: UpstreamCall,
      values: TemplateValues,
      cancel: Cancellation,
      timeoutMs: number,
      trace?: Readonly<Record<string, string>>,
    ): Promise<Answer> => request(upstreams, plan.upstream, call, values, cancel, timeoutMs, trace);

    const attemptOnce = async (
      values: TemplateValues,
      cancel: Cancellation,
      timeoutMs: number,
      trace: Readonly<Record<string, string>> | undefined,
    ): Promise<number> => {
      if (breaker.state === CircuitState.HalfOpen) throw new BrokenCircuitError();
      return breaker.execute(async () => {
        const answer = await send(plan.request, values, cancel, timeoutMs, trace);
        if (plan.transient.has(answer.status)) {
          throw new TransientFailure(`answered ${answer.status}`, answer.retryAfterMs);
        }
        return answer.status;
      });
    };

    const runOnce = async (
      order: Order,
      cancel: Cancellation,
      info: RunInfo | undefined,
    ): Promise<void> => {
      // Without a recorded run (a pipeline run directly), retries of this call still share a key.
      const runId = info?.runId ?? randomUUID();
      const key = `${runId}:${plan.name}`;
      const values: TemplateValues = {
        order,
        idempotencyKey: key,
        stepKey: key,
        runId,
        step: plan.name,
      };
      const trace = traceHeaders?.(cancel, plan.name);
      const deadlineAt = order.deadlineAt ?? Infinity;
      const { retry } = plan;
      let delayMs = retry.initialDelayMs;
      for (let attempt = 1; ; attempt++) {
        const leftMs = deadlineAt - Date.now();
        if (leftMs < minAttemptMs) {
          throw new OrderError('timeout', kindMessage('timeout'));
        }
        let failure: TransientFailure;
        try {
          const status = await attemptOnce(values, cancel, Math.min(plan.timeoutMs, leftMs), trace);
          if (plan.success.has(status)) return;
          const refusal = plan.refusals.get(status);
          if (refusal !== undefined) throw new OrderError(refusal, kindMessage(refusal));
          throw new OrderError('internal', `${plan.upstream} answered ${status}`);
        } catch (error) {
          // The upstream may have applied a request it was answering when the order aborted:
          // report it done, so that the saga undoes it (an undo of nothing is harmless).
          if (error instanceof AbortedInFlight) return;
          if (cancel.aborted) throw cancel.reason;
          if (error instanceof BrokenCircuitError) {
            throw new OrderError(plan.unavailableKind, kindMessage(plan.unavailableKind), {
              cause: error,
            });
          }
          if (!(error instanceof TransientFailure)) throw error;
          failure = error;
        }
        // Built only when thrown: an error captures a stack, and most failures are retried.
        const unavailable = (): OrderError =>
          new OrderError(plan.unavailableKind, kindMessage(plan.unavailableKind), {
            cause: failure,
          });
        if (attempt >= retry.attempts) throw unavailable();
        const backoffMs = retry.jitter ? delayMs * (0.5 + random() / 2) : delayMs;
        const waitMs =
          retry.honourRetryAfter && failure.retryAfterMs !== undefined
            ? Math.max(backoffMs, failure.retryAfterMs)
            : backoffMs;
        // A retry that could not start before the deadline is not waited for.
        if (Date.now() + waitMs + minAttemptMs > deadlineAt) throw unavailable();
        upstreams.metrics?.recordRetry(plan.upstream);
        await sleep(waitMs, cancel);
        delayMs = Math.min(delayMs * retry.factor, retry.maxDelayMs);
      }
    };

    const step: Step<Order> = {
      name: plan.name,
      run: plan.courierSlot
        ? async (order, cancel, info) => {
            const permit = await options.courierPool.acquire(cancel);
            try {
              await runOnce(order, cancel, info);
            } finally {
              permit.release();
            }
          }
        : runOnce,
    };
    const { compensation } = plan;
    if (compensation === undefined) return step;
    return {
      ...step,
      compensate: async (order, cancel, _attempt, info) => {
        const runId = info?.runId ?? randomUUID();
        const stepKey = `${runId}:${plan.name}`;
        const values: TemplateValues = {
          order,
          idempotencyKey: `${stepKey}:undo`,
          stepKey,
          runId,
          step: plan.name,
        };
        let answer: Answer;
        try {
          answer = await send(compensation, values, cancel, compensation.timeoutMs ?? Infinity);
        } catch (error) {
          if (error instanceof AbortedInFlight) throw error.reason;
          if (cancel.aborted) throw cancel.reason;
          throw new OrderError('unavailable', `undoing ${plan.name}: ${messageOf(error)}`, {
            cause: error,
          });
        }
        if (compensation.success.has(answer.status)) return;
        if (compensation.nothingToUndo.has(answer.status)) return;
        throw new OrderError(
          plan.transient.has(answer.status) ? 'unavailable' : 'internal',
          `undoing ${plan.name}: ${plan.upstream} answered ${answer.status}`,
        );
      },
    };
  });
}

/**
 * AbortedInFlight is a request the order's cancellation aborted after it was sent: whether
 * the upstream applied it is unknown.
 */
class AbortedInFlight extends Error {
  constructor(readonly reason: unknown) {
    super('aborted in flight');
    this.name = 'AbortedInFlight';
  }
}

/** Answer is what an upstream answered: its status and `Retry-After`, if any. */
interface Answer {
  readonly status: number;
  readonly retryAfterMs: number | undefined;
}

/**
 * request sends `call` rendered for `values`, with the `trace` headers if any, through the
 * origin's pool and reads the answer to its end. It aborts the request (closing its socket) when `cancel` aborts, rejecting with
 * `cancel.reason`, and after `timeoutMs`, rejecting with a {@link TransientFailure}; no answer
 * is a {@link TransientFailure} too. The timer and the abort listener are gone when it settles.
 */
async function request(
  upstreams: Upstreams,
  upstream: string,
  call: UpstreamCall,
  values: TemplateValues,
  cancel: Cancellation,
  timeoutMs: number,
  trace: Readonly<Record<string, string>> | undefined,
): Promise<Answer> {
  cancel.throwIfAborted();
  const url = new URL(renderText(call.url, values, encodeURIComponent));
  const headers: Record<string, string> = { ...call.headers };
  for (const [name, value] of Object.entries(headers)) {
    headers[name] = renderText(value, values, (text) => text);
  }
  headers['idempotency-key'] = values.idempotencyKey;
  let body: string | undefined;
  if (call.body !== undefined) {
    body = JSON.stringify(renderBody(call.body, values));
    headers['content-type'] ??= 'application/json';
  }
  if (trace !== undefined) Object.assign(headers, trace);
  const controller = new AbortController();
  const timer =
    timeoutMs === Infinity
      ? undefined
      : setTimeout(() => {
          controller.abort(new TransientFailure(`no answer within ${Math.round(timeoutMs)} ms`));
        }, timeoutMs);
  const stopListening = cancel.onAbort((reason) => {
    controller.abort(reason);
  });
  const started = performance.now();
  const metrics = upstreams.metrics;
  try {
    const response = await upstreams.poolFor(url.origin).request({
      path: `${url.pathname}${url.search}`,
      method: call.method,
      headers,
      body: body ?? null,
      signal: controller.signal,
    });
    await response.body.dump({ limit: 1 << 20, signal: controller.signal });
    metrics?.recordRequest(upstream, response.statusCode, (performance.now() - started) / 1000);
    return {
      status: response.statusCode,
      retryAfterMs: retryAfterMs(response.headers['retry-after']),
    };
  } catch (error) {
    metrics?.recordRequest(upstream, undefined, (performance.now() - started) / 1000);
    if (cancel.aborted) {
      metrics?.recordAbort(upstream);
      throw new AbortedInFlight(cancel.reason);
    }
    const reason: unknown = controller.signal.reason;
    if (reason instanceof TransientFailure) throw reason;
    throw new TransientFailure(`no answer: ${messageOf(error)}`);
  } finally {
    clearTimeout(timer);
    stopListening();
  }
}

/** retryAfterMs reads `Retry-After`: delay-seconds or an HTTP date; anything else is ignored. */
function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
