import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
    // Servers that tests start (in process or spawned) record orders in memory unless a test
    // asks for a durable store: no shared ./data between test files, no slow embedded start.
    env: { ORDER_STORE: 'memory' },
  },
});
