import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig } from '../src/config.js';

describe('reliability configuration', () => {
  it('has documented defaults', () => {
    const config = loadConfig({});
    expect({
      maxInflightOrders: config.maxInflightOrders,
      abandonGraceMs: config.abandonGraceMs,
      drainTimeoutMs: config.drainTimeoutMs,
      headersTimeoutMs: config.headersTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      maxHeaderSizeBytes: config.maxHeaderSizeBytes,
    }).toEqual({
      maxInflightOrders: 1000,
      abandonGraceMs: 1000,
      drainTimeoutMs: 10_000,
      headersTimeoutMs: 10_000,
      bodyTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5000,
      maxHeaderSizeBytes: 16_384,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      MAX_INFLIGHT_ORDERS: '7',
      ABANDON_GRACE_MS: '0',
      DRAIN_TIMEOUT_MS: '0',
      HEADERS_TIMEOUT_MS: '100',
      BODY_TIMEOUT_MS: '100',
      KEEP_ALIVE_TIMEOUT_MS: '1',
      MAX_HEADER_SIZE_BYTES: '1024',
    });
    expect([
      config.maxInflightOrders,
      config.abandonGraceMs,
      config.drainTimeoutMs,
      config.headersTimeoutMs,
      config.bodyTimeoutMs,
      config.keepAliveTimeoutMs,
      config.maxHeaderSizeBytes,
    ]).toEqual([7, 0, 0, 100, 100, 1, 1024]);
  });

  it.each([
    ['MAX_INFLIGHT_ORDERS', '0'],
    ['MAX_INFLIGHT_ORDERS', '-1'],
    ['STORE_SYNC', 'always'],
    ['ABANDON_GRACE_MS', 'soon'],
    ['DRAIN_TIMEOUT_MS', '600001'],
    ['HEADERS_TIMEOUT_MS', '0'],
    ['BODY_TIMEOUT_MS', '0'],
    ['KEEP_ALIVE_TIMEOUT_MS', '0'],
    ['MAX_HEADER_SIZE_BYTES', '1023'],
  ])('%s=%s throws a ConfigError naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it('a headers timeout longer than the body timeout is refused', () => {
    expect(() => loadConfig({ HEADERS_TIMEOUT_MS: '2000', BODY_TIMEOUT_MS: '1000' })).toThrow(
      /HEADERS_TIMEOUT_MS \(2000\) must not exceed BODY_TIMEOUT_MS \(1000\)/,
    );
    expect(defaultConfig.headersTimeoutMs).toBeLessThanOrEqual(defaultConfig.bodyTimeoutMs);
  });
});
