import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { OrderOutcome } from '../../src/order/pipeline.js';
import type { Tracker } from '../../src/core/tracker.js';

// The README's library example, taken from the README itself so the two cannot drift: it
// must type-check against the library's sources and run, with `fetch` stubbed.

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Using the library'));
const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const workDir = mkdtempSync(join(tmpdir(), 'order-pipeline-readme-'));

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

let runs = 0;

/** runExample runs the example as a module of its own and hands back what it made. */
async function runExample(): Promise<{ outcome: OrderOutcome; tracker: Tracker }> {
  const library = pathToFileURL(join(repoRoot, 'src/index.ts')).href;
  const file = join(workDir, `example-${++runs}.ts`);
  writeFileSync(
    file,
    `${example.replace("from 'order-pipeline'", `from '${library}'`)}\nexport { outcome, tracker };\n`,
  );
  return (await import(pathToFileURL(file).href)) as { outcome: OrderOutcome; tracker: Tracker };
}

describe('the README library example', () => {
  it('is in the README and imports the package by name', () => {
    expect(example).toContain("from 'order-pipeline'");
    expect(example).toContain('pipeline.run(');
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
    const { outcome, tracker } = await runExample();
    expect(outcome.status).toBe('ok');
    expect(outcome.steps.map((step) => [step.name, step.status])).toStrictEqual([
      ['payment', 'ok'],
      ['vendor', 'ok'],
      ['courier', 'ok'],
    ]);
    expect(fetch).toHaveBeenCalledOnce();
    expect(fetch.mock.calls[0]?.[1].signal).toBeInstanceOf(AbortSignal);
    expect(tracker.active).toBe(0);
  });

  it('runs: payment declined, the other steps canceled at once', async () => {
    vi.stubGlobal('fetch', () => Promise.resolve(new Response('{}', { status: 402 })));
    const { outcome, tracker } = await runExample();
    expect(outcome.error?.kind).toBe('payment_declined');
    expect(outcome.steps.map((step) => [step.name, step.status])).toStrictEqual([
      ['payment', 'error'],
      ['vendor', 'canceled'],
      ['courier', 'canceled'],
    ]);
    expect(tracker.active).toBe(0);
  });
});
