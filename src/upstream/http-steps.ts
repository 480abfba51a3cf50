import { randomUUID } from 'node:crypto';
import { BrokenCircuitError, CircuitState } from 'cockatiel';
import type { Dispatcher } from 'undici';
import type { Cancellation } from '../core/cancellation.js';
import type { Pool } from '../core/semaphore.js';
import { sleep } from '../core/sleep.js';
import { OrderError, kindMessage } from '../order/errors.js';
import type { Order } from '../order/order.js';
import type { RunInfo, Step } from '../order/step.js';
import type { PipelinePlan, UpstreamCall } from './pipeline-file.js';
import { hasPlaceholders, renderBody, renderText, type TemplateValues } from './template.js';
import type { UpstreamMetrics } from './upstream-metrics.js';
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
 * An attempt that the order's deadline cuts short is aborted by the order's cancellation;
 * its own timer fires this long after the deadline, for a step run without one.
 */
const deadlineBackstopMs = 50;

/**
 * httpSteps builds one step per step of the pipeline file, each calling its upstream over
 * HTTP. A step's `run`:
 * - sends its request with `Idempotency-Key: <run id>:<step>` (the ledger's run id, the same
 *   across retries and after a recovery, so the upstream applies it once) and, when tracing
 *   is on, `traceparent`;
 * - retries transient failures (transient statuses, no answer, the attempt's timeout) with
 *   exponential backoff and jitter, honouring `Retry-After`, while attempts remain and the
 *   next one can start before the order's deadline (`minAttemptMs` left); then fails with its
 *   unavailable kind. An attempt gets its own timeout, or, when less time is left, is left to
 *   the order's deadline to abort (see below), its own timer then set {@link deadlineBackstopMs}
 *   past the deadline for a step run without one, where it fails the step as `timeout`;
 * - when it fails after a request that was written and never answered, its effect may have
 *   happened: it fails with `effectUnknown` set, and the saga undoes it all the same;
 * - fails at once, never retried, with the kind of a refusal status (402 → `payment_declined`),
 *   with `internal` for a status the file does not classify, and with its unavailable kind
 *   while the upstream's breaker is open (or half-open, its probe in flight);
 * - on the order's cancellation aborts the request in flight, which closes its socket, and
 *   resolves: the upstream may have applied it, so the step counts as done and the saga undoes
 *   it (an undo answered "nothing to undo" counts as done). Aborted between attempts, or
 *   before its first request, it rejects with `cancel.reason`, or resolves if an earlier
 *   attempt went unanswered.
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
    const { compensation } = plan;
    const requestCall = new PreparedCall(plan.request);
    const undoCall = compensation === undefined ? undefined : new PreparedCall(compensation);
    const send = (
      call: PreparedCall,
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
        const answer = await send(requestCall, values, cancel, timeoutMs, trace);
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
      // Set once an attempt was written and went unanswered: the upstream may have applied it.
      let effectUnknown = false;
      for (let attempt = 1; ; attempt++) {
        const leftMs = deadlineAt - Date.now();
        if (leftMs < minAttemptMs) {
          throw new OrderError('timeout', kindMessage('timeout'), { effectUnknown });
        }
        let failure: TransientFailure;
        const cutByDeadline = leftMs <= plan.timeoutMs;
        const attemptMs = cutByDeadline ? leftMs + deadlineBackstopMs : plan.timeoutMs;
        try {
          const status = await attemptOnce(values, cancel, attemptMs, trace);
          if (plan.success.has(status)) return;
          // An earlier attempt that went unanswered may still be applied: this answer, to
          // another attempt, does not say it was not.
          const refusal = plan.refusals.get(status);
          if (refusal !== undefined) {
            throw new OrderError(refusal, kindMessage(refusal), { effectUnknown });
          }
          throw new OrderError('internal', `${plan.upstream} answered ${status}`, {
            effectUnknown,
          });
        } catch (error) {
          // The upstream may have applied a request it was answering when the order aborted:
          // report it done, so that the saga undoes it (an undo of nothing is harmless).
          if (error instanceof AbortedInFlight) return;
          if (error instanceof TransientFailure && error.unanswered) effectUnknown = true;
          if (cancel.aborted) {
            if (effectUnknown) return;
            throw cancel.reason;
          }
          if (error instanceof BrokenCircuitError) {
            throw new OrderError(plan.unavailableKind, kindMessage(plan.unavailableKind), {
              cause: error,
              effectUnknown,
            });
          }
          if (!(error instanceof TransientFailure)) throw error;
          // Past the order's deadline, and nothing aborted the attempt (a step run without a
          // deadline of its own): the order timed out.
          if (error instanceof AttemptTimedOut && cutByDeadline) {
            throw new OrderError('timeout', kindMessage('timeout'), {
              cause: error,
              effectUnknown,
            });
          }
          failure = error;
        }
        // Built only when thrown: an error captures a stack, and most failures are retried.
        const unavailable = (): OrderError =>
          new OrderError(plan.unavailableKind, kindMessage(plan.unavailableKind), {
            cause: failure,
            effectUnknown,
          });
        if (attempt >= retry.attempts) throw unavailable();
        const backoffMs = retry.jitter ? delayMs * (0.5 + random() / 2) : delayMs;
        const waitMs =
          retry.honourRetryAfter && failure.retryAfterMs !== undefined
            ? Math.max(backoffMs, failure.retryAfterMs)
            : backoffMs;
        // A retry that could not start before the deadline (or ever) is not waited for.
        if (!Number.isFinite(waitMs) || Date.now() + waitMs + minAttemptMs > deadlineAt) {
          throw unavailable();
        }
        upstreams.metrics?.recordRetry(plan.upstream);
        try {
          await sleep(waitMs, cancel);
        } catch (error) {
          // Aborted between attempts (sleep rejects with the abort's reason) after one went
          // unanswered: report it done, to be undone.
          if (effectUnknown && error === cancel.reason) return;
          throw error;
        }
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
    if (compensation === undefined || undoCall === undefined) return step;
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
          answer = await send(undoCall, values, cancel, compensation.timeoutMs ?? Infinity);
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

/** AttemptTimedOut is an attempt that had no answer within its timeout. */
class AttemptTimedOut extends TransientFailure {
  override readonly name = 'AttemptTimedOut';
}

/**
 * AbortedInFlight is a request the order's cancellation aborted once it was handed to its
 * origin's pool: it may have been sent, so whether the upstream applied it is unknown.
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

/** An answer's body is read up to this many bytes: a longer one is not read to its end. */
const maxAnswerBytes = 1 << 20;

/** Header values are sent as rendered, not encoded. */
const asIs = (text: string): string => text;

/** A request ready for its origin's pool: where it goes and what it sends. */
type RenderedRequest = Dispatcher.DispatchOptions & { readonly origin: string };

/** A header of a call: its value, or its template when it has placeholders. */
interface HeaderTemplate {
  readonly name: string;
  readonly value: string;
  readonly templated: boolean;
}

/**
 * PreparedCall is an {@link UpstreamCall} with what does not depend on the order worked out
 * once: the origin and path of a URL without placeholders, the values of headers without
 * placeholders, and the body of a template without placeholders (rendered on first use). A
 * request renders only the parts that have placeholders.
 */
class PreparedCall {
  readonly #call: UpstreamCall;
  /** The origin and path of the URL when it has no placeholders (and parses). */
  readonly #target: { readonly origin: string; readonly path: string } | undefined;
  /** The call's headers but `idempotency-key`, which every request sets to its own key. */
  readonly #headers: readonly HeaderTemplate[];
  readonly #hasContentType: boolean;
  readonly #bodyIsFixed: boolean;
  #fixedBody: string | undefined;

  constructor(call: UpstreamCall) {
    this.#call = call;
    this.#target = hasPlaceholders(call.url) ? undefined : targetOf(call.url, false);
    this.#headers = Object.entries(call.headers)
      .filter(([name]) => name !== 'idempotency-key')
      .map(([name, value]) => ({ name, value, templated: hasPlaceholders(value) }));
    this.#hasContentType = Object.hasOwn(call.headers, 'content-type');
    this.#bodyIsFixed = !hasPlaceholders(call.body);
  }

  /**
   * render is the request for `values`: the URL's placeholders written URL-encoded and the
   * headers' as they are, `idempotency-key: <values.idempotencyKey>`, the body as JSON with
   * `content-type: application/json` unless the call names one, and the `trace` headers, which
   * take the place of any the call names. Throws when the URL does not parse.
   */
  render(
    values: TemplateValues,
    trace: Readonly<Record<string, string>> | undefined,
  ): RenderedRequest {
    const call = this.#call;
    const target = this.#target ?? targetOf(renderText(call.url, values, encodeURIComponent), true);
    const headers: string[] = [];
    for (const header of this.#headers) {
      if (inTrace(trace, header.name)) continue;
      headers.push(
        header.name,
        header.templated ? renderText(header.value, values, asIs) : header.value,
      );
    }
    if (!inTrace(trace, 'idempotency-key')) headers.push('idempotency-key', values.idempotencyKey);
    let body: string | null = null;
    if (call.body !== undefined) {
      body = this.#fixedBody ?? JSON.stringify(renderBody(call.body, values));
      if (this.#bodyIsFixed) this.#fixedBody = body;
      if (!this.#hasContentType && !inTrace(trace, 'content-type')) {
        headers.push('content-type', 'application/json');
      }
    }
    if (trace !== undefined) {
      for (const [name, value] of Object.entries(trace)) headers.push(name, value);
    }
    return { origin: target.origin, path: target.path, method: call.method, headers, body };
  }
}

/** inTrace says whether the `trace` headers, if any, include `name`. */
function inTrace(trace: Readonly<Record<string, string>> | undefined, name: string): boolean {
  return trace !== undefined && Object.hasOwn(trace, name);
}

/** targetOf is the origin and path of `url`; one that does not parse throws, or is undefined. */
function targetOf(url: string, orThrow: true): { origin: string; path: string };
function targetOf(url: string, orThrow: false): { origin: string; path: string } | undefined;
function targetOf(url: string, orThrow: boolean): { origin: string; path: string } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    if (orThrow) throw error;
    return undefined;
  }
  return { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
}

/**
 * request sends `call` rendered for `values`, with the `trace` headers if any, through the
 * origin's pool and reads the answer to its end, discarding its body: past
 * {@link maxAnswerBytes} it aborts the request and answers the status. When `cancel` aborts,
 * it aborts the request, which closes its socket, and rejects with {@link AbortedInFlight};
 * after `timeoutMs` it aborts it too and rejects with a {@link TransientFailure}; no answer is
 * a {@link TransientFailure} as well. Already aborted, it rejects with `cancel.reason` and sends
 * nothing. The timer and the abort listener are gone when it settles.
 */
function request(
  upstreams: Upstreams,
  upstream: string,
  call: PreparedCall,
  values: TemplateValues,
  cancel: Cancellation,
  timeoutMs: number,
  trace: Readonly<Record<string, string>> | undefined,
): Promise<Answer> {
  if (cancel.aborted) return Promise.reject(cancel.reason);
  let rendered: RenderedRequest;
  let pool: Dispatcher;
  try {
    rendered = call.render(values, trace);
    pool = upstreams.poolFor(rendered.origin);
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise<Answer>((resolve, reject) => {
    const exchange = new Exchange(resolve, reject, upstreams.metrics, upstream, cancel, timeoutMs);
    // A request the pool cannot take comes back through the handler's onResponseError.
    pool.dispatch(rendered, exchange);
  });
}

/**
 * Exchange is one request as the undici handler that reads its answer. It settles its
 * promise once: with the status and `Retry-After` when the body has been read to its end (or
 * past {@link maxAnswerBytes}, when it aborts the request), or with the failure; and then
 * clears its timer and removes its abort listener. Its own aborts (the order's cancellation,
 * the timeout) settle at once: a request still waiting for a connection is aborted when it
 * gets one, before anything is written, and one already sent is aborted through undici's
 * controller, which destroys its socket.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #resolve: (answer: Answer) => void;
  readonly #reject: (error: unknown) => void;
  readonly #metrics: UpstreamMetrics | undefined;
  readonly #upstream: string;
  readonly #started = performance.now();
  readonly #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #stopListening: () => void;
  #controller: Dispatcher.DispatchController | undefined;
  /** What this side aborted the request with: an {@link AbortedInFlight} or the timeout. */
  #abortedWith: Error | undefined;
  #settled = false;
  #status = 0;
  #retryAfter: string | string[] | undefined;
  #bytes = 0;

  constructor(
    resolve: (answer: Answer) => void,
    reject: (error: unknown) => void,
    metrics: UpstreamMetrics | undefined,
    upstream: string,
    cancel: Cancellation,
    timeoutMs: number,
  ) {
    this.#resolve = resolve;
    this.#reject = reject;
    this.#metrics = metrics;
    this.#upstream = upstream;
    this.#timer =
      timeoutMs === Infinity
        ? undefined
        : setTimeout(() => {
            this.#abort(new AttemptTimedOut(`no answer within ${Math.round(timeoutMs)} ms`));
          }, timeoutMs);
    this.#stopListening = cancel.onAbort((reason) => {
      this.#abort(new AbortedInFlight(reason));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Aborted while it waited for a connection: it ends here, before anything is written.
    if (this.#abortedWith !== undefined) controller.abort(this.#abortedWith);
    else this.#controller = controller;
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // An informational answer (1xx): the answer itself follows.
    if (statusCode < 200) return;
    this.#status = statusCode;
    this.#retryAfter = headers['retry-after'];
    if (Number(headers['content-length']) > maxAnswerBytes) this.#answerTooLong(controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > maxAnswerBytes) this.#answerTooLong(controller);
  }

  onResponseEnd(): void {
    this.#answer();
  }

  /** Also called, without a controller, when the pool refuses the request outright. */
  onResponseError(_controller: unknown, error: Error): void {
    this.#fail(error);
  }

  #answer(): void {
    if (this.#settled) return;
    this.#settle();
    this.#metrics?.recordRequest(this.#upstream, this.#status, this.#seconds());
    this.#resolve({ status: this.#status, retryAfterMs: retryAfterMs(this.#retryAfter) });
  }

  /** The status is known: the rest of the body is not read, and the socket goes with it. */
  #answerTooLong(controller: Dispatcher.DispatchController): void {
    this.#answer();
    controller.abort(new Error(`answer longer than ${maxAnswerBytes} bytes: the rest is unread`));
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#settle();
    this.#metrics?.recordRequest(this.#upstream, undefined, this.#seconds());
    const abortedWith = this.#abortedWith;
    if (abortedWith instanceof AbortedInFlight) {
      this.#metrics?.recordAbort(this.#upstream);
      this.#reject(abortedWith);
      return;
    }
    // Handed to a connection (onRequestStart), the request was written or being written.
    const sent = this.#controller !== undefined;
    this.#reject(
      abortedWith instanceof AttemptTimedOut
        ? new AttemptTimedOut(abortedWith.message, undefined, sent)
        : new TransientFailure(`no answer: ${messageOf(error)}`, undefined, sent),
    );
  }

  #abort(failure: Error): void {
    if (this.#settled) return;
    this.#abortedWith = failure;
    // Once started, undici's abort errors the request (back through onResponseError, at once)
    // and destroys its socket; before, onRequestStart aborts it.
    this.#controller?.abort(failure);
    this.#fail(failure);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#stopListening();
  }

  #seconds(): number {
    return (performance.now() - this.#started) / 1000;
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
