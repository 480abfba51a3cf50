/**
 * order-pipeline/core: the concurrency primitives alone — cancellation, task group,
 * semaphore (the Pool contract), tracker, abortable sleep. Importing it loads nothing else.
 */
export { CancelSource, link, type Cancellation, type ParentCancellation } from './cancellation.js';
export { PoolDecorator } from './pool-decorator.js';
export { Semaphore, type Permit, type Pool } from './semaphore.js';
export { sleep } from './sleep.js';
export { TaskGroup, type Task, type TaskSettled } from './task-group.js';
export { Tracker } from './tracker.js';
