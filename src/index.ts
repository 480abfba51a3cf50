/**
 * order-pipeline: the order service as a library — the primitives, the order domain, the
 * pipeline, the ledger and the service, with the in-memory store and the service's default
 * settings. Importing it loads no driver and nothing of the server's (Fastify, pino, metrics,
 * tracing). The durable stores are in `order-pipeline/stores`, the HTTP server in
 * `order-pipeline/server`, the primitives alone in `order-pipeline/core`.
 */
export * from './core/index.js';
export {
  OrderError,
  errorKinds,
  kindMessage,
  kindOf,
  publicMessage,
  type ErrorKind,
} from './order/errors.js';
export { parseOrder, stepNames, type Order, type StepName } from './order/order.js';
export {
  Pipeline,
  type OrderOutcome,
  type PipelineObserver,
  type PipelineOptions,
  type RunOptions,
  type StepResult,
  type StepStatus,
} from './order/pipeline.js';
export { defaultStepDelays, simulatedSteps } from './order/simulated-steps.js';
export type { Step } from './order/step.js';
export {
  OrderService,
  ServiceUnavailable,
  type OrderRequest,
  type OrderServiceOptions,
  type Readiness,
  type ServiceLoad,
  type ServiceSettings,
} from './service/order-service.js';
export {
  Admission,
  type Admitted,
  type AdmissionOptions,
  type Refused,
} from './service/admission.js';
export { MeasuredPool } from './service/measured-pool.js';
export { OrderLedger, retryableKinds, type SubmitOptions } from './ledger/order-ledger.js';
export { sweepIntervalFor } from './ledger/ledger-options.js';
export type { LedgerHooks, LedgerLogger, OrderLedgerOptions } from './ledger/ledger-options.js';
export type { OrderAnswer } from './service/order-answer.js';
export type { LedgerRefusal, Recorded, Submission } from './ledger/submission.js';
export { fingerprint, canonicalJson } from './ledger/fingerprint.js';
export { compensateStep, needsCompensation, retryDelayMs } from './ledger/saga.js';
export type * from './ledger/order-store.js';
export { MemoryOrderStore, type MemoryOrderStoreOptions } from './store/memory-order-store.js';
export { defaultServiceSettings } from './config.js';
