import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let poolOffset = pool.length;
let lastMs = -1;
let counter = 0;

/**
 * newRunId draws the id of a run: a UUID version 7 (RFC 9562) — the time in milliseconds,
 * then a counter that orders the ids drawn in one millisecond by this process, then random
 * bits. Ids increase with time, so stores index new runs at the end of their indexes rather
 * than at random places.
 */
export function newRunId(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    counter = 0;
  } else {
    counter = (counter + 1) & 0xfff;
  }
  if (poolOffset + 8 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const random = pool.toString('hex', poolOffset, poolOffset + 8);
  poolOffset += 8;
  const time = ms.toString(16).padStart(12, '0');
  const variant = ((parseInt(random.slice(0, 1), 16) & 0x3) | 0x8).toString(16);
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-7${counter.toString(16).padStart(3, '0')}-` +
    `${variant}${random.slice(1, 4)}-${random.slice(4, 16)}`
  );
}
