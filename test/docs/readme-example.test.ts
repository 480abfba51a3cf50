import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { OrderAnswer } from '../../src/service/order-answer.js';
import type { OrderService } from '../../src/service/order-service.js';
import { libraryExample } from './readme-example.js';

// The README's library example against the library's sources: it must type-check under the
// project's settings and run, with `fetch` stubbed. test/package.test.ts does the same
// against the package as installed from its tarball.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const example = libraryExample();
const workDir = mkdtempSync(join(tmpdir(), 'order-pipeline-readme-'));

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

let runs = 0;

/** runExample runs the example as a module of its own and hands back what it made. */
async function runExample(): Promise<{ answer: OrderAnswer; service: OrderService }> {
  const library = pathToFileURL(join(repoRoot, 'src/index.ts')).href;
  const file = join(workDir, `example-${++runs}.ts`);
  writeFileSync(
    file,
    `${example.replace("from 'order-pipeline'", `from '${library}'`)}\nexport { answer, service };\n`,
  );
  return (await import(pathToFileURL(file).href)) as {
    answer: OrderAnswer;
    service: OrderService;
  };
}

describe('the README library example', () => {
  it('imports the package by name and submits to an OrderService', () => {
    expect(example).toContain("from 'order-pipeline'");
    expect(example).toContain('new OrderService(');
    expect(example).toContain('service.submit(');
  });

  it('type-checks against the library under the project settings', () => {
    // .mts: the example is an ES module, as in a package of `"type": "module"`.
    const file = join(workDir, 'example.mts');
    writeFileSync(file, example);
    const program = ts.createProgram([file], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts'],
      types: ['node'],
      typeRoots: [join(repoRoot, 'node_modules/@types')],
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      skipLibCheck: true,
      noEmit: true,
      paths: { 'order-pipeline': [join(repoRoot, 'src/index.ts')] },
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(problems).toStrictEqual([]);
  }, 30_000);

  it('runs: payment accepted, every step ok, nothing left running', async () => {
    const fetch = vi.fn((_url: string, _init: RequestInit) => Promise.resolve(new Response('{}')));
    vi.stubGlobal('fetch', fetch);
    const { answer, service } = await runExample();
    expect(answer.error).toBeUndefined();
    expect(answer.outcome?.status).toBe('ok');
    expect(answer.outcome?.steps.map((step) => [step.name, step.status])).toStrictEqual([
      ['payment', 'ok'],
      ['vendor', 'ok'],
      ['courier', 'ok'],
    ]);
    expect(fetch).toHaveBeenCalledOnce();
    expect(fetch.mock.calls[0]?.[1].signal).toBeInstanceOf(AbortSignal);
    expect(service.tracker.active).toBe(0);
    expect(service.courierPool.inUse).toBe(0);
  });

  it('runs: payment declined, the other steps canceled at once', async () => {
    vi.stubGlobal('fetch', () => Promise.resolve(new Response('{}', { status: 402 })));
    const { answer, service } = await runExample();
    expect(answer.error).toStrictEqual({
      kind: 'payment_declined',
      message: 'payment was declined',
    });
    expect(answer.outcome?.steps.map((step) => [step.name, step.status])).toStrictEqual([
      ['payment', 'error'],
      ['vendor', 'canceled'],
      ['courier', 'canceled'],
    ]);
    expect(service.tracker.active).toBe(0);
  });

  it('runs: a payment that throws is internal, its cause logged by the example', async () => {
    const failure = new TypeError('fetch failed: connect ECONNREFUSED 10.0.0.7:443');
    vi.stubGlobal('fetch', () => Promise.reject(failure));
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const { answer } = await runExample();
    expect(answer.error).toStrictEqual({ kind: 'internal', message: 'internal error' });
    expect(answer.error?.cause).toBe(failure);
    expect(logged).toHaveBeenCalledWith('order failed', failure);
  });
});
