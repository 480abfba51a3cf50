export {
  CancelSource,
  link,
  type Cancellation,
  type ParentCancellation,
} from './core/cancellation.js';
export { Semaphore, type Permit, type Pool } from './core/semaphore.js';
export { sleep } from './core/sleep.js';
export { TaskGroup, type Task, type TaskSettled } from './core/task-group.js';
export { Tracker } from './core/tracker.js';
export { OrderError, errorKinds, kindOf, publicMessage, type ErrorKind } from './order/errors.js';
export { stepNames, type Order, type StepName } from './order/order.js';
export {
  createOrderService,
  type OrderService,
  type OrderServiceOptions,
} from './order/order-service.js';
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
  observeOrderService,
  type Observability,
  type ObservabilityOptions,
  type ObservedOrderService,
} from './observability/observability.js';
export { OrderMetrics } from './observability/metrics.js';
export { ObservedPool, type PoolWait } from './observability/observed-pool.js';
export { OrderTracer, createTracing, type Tracing } from './observability/tracing.js';
export {
  compensateInReverse,
  compensateStep,
  needsCompensation,
  retryDelayMs,
  type CompensationAttempt,
} from './order/saga.js';
export {
  OrderLedger,
  ledgerDefaults,
  requestHash,
  retryableKinds,
  type LedgerHooks,
  type LedgerLogger,
  type OrderLedgerOptions,
  type RecordedOutcome,
  type RecordedStep,
  type SubmitResult,
} from './store/order-ledger.js';
export type * from './store/order-store.js';
export { MemoryOrderStore } from './store/memory-order-store.js';
export { openPgliteOrderStore } from './store/pglite-order-store.js';
export { openPostgresOrderStore, type PostgresStoreOptions } from './store/postgres-order-store.js';
export {
  SqlOrderStore,
  migrate,
  type SqlClient,
  type SqlDatabase,
} from './store/sql-order-store.js';
export { migrations, type Migration } from './store/migrations.js';
