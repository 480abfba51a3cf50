import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The README's claim "dependencies point inward", checked: every import of src/ is read, each
// layer may import only the layers listed for it, and no module reaches itself again through
// its imports.

const src = fileURLToPath(new URL('../src', import.meta.url));

/** What each layer may import (besides itself and packages), innermost first. */
const allowed: Readonly<Record<string, readonly string[]>> = {
  core: [],
  order: ['core'],
  ledger: ['order', 'core'],
  // Stores implement the contract the ledger declares; the pool implements the core's.
  store: ['ledger', 'order', 'core'],
  pool: ['core'],
  service: ['ledger', 'order', 'core'],
  observability: ['ledger', 'order', 'core'],
  http: ['service', 'ledger', 'order', 'core', 'observability'],
  // Real upstreams: steps over HTTP, implementing the order's Step contract.
  upstream: ['order', 'core'],
  // The configuration names the stores and exporters it chooses between, and its numbers
  // include the service's settings; nothing inside imports it.
  config: ['store', 'observability', 'service', 'upstream'],
  // The composition root and the package's entry points see everything.
  root: [
    'config',
    'core',
    'order',
    'ledger',
    'store',
    'pool',
    'service',
    'observability',
    'http',
    'upstream',
  ],
};

/** Graph maps each module (a path relative to src/) to the modules of src/ it imports. */
type Graph = ReadonlyMap<string, readonly string[]>;

function layerOf(path: string): string {
  if (path === 'config.ts') return 'config';
  const [first = ''] = path.split('/');
  return path.includes('/') ? first : 'root';
}

/** outwardImports lists every import of `graph` that its layer may not make. */
function outwardImports(graph: Graph): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    const fromLayer = layerOf(from);
    for (const target of targets) {
      const toLayer = layerOf(target);
      if (toLayer === fromLayer) continue;
      if (!(allowed[fromLayer] ?? []).includes(toLayer)) {
        wrong.push(`${from} (${fromLayer}) imports ${target} (${toLayer})`);
      }
    }
  }
  return wrong;
}

/** cycles lists one path for each import cycle of `graph`, as `a → b → a`. */
function cycles(graph: Graph): string[] {
  const found: string[] = [];
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (module: string): void => {
    const at = onPath.indexOf(module);
    if (at >= 0) {
      found.push([...onPath.slice(at), module].join(' → '));
      return;
    }
    if (done.has(module)) return;
    onPath.push(module);
    for (const target of graph.get(module) ?? []) visit(target);
    onPath.pop();
    done.add(module);
  };
  for (const module of graph.keys()) visit(module);
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** importGraph reads every module of src/ and the relative modules it imports. */
function importGraph(): Graph {
  const graph = new Map<string, string[]>();
  for (const file of sources(src)) {
    const text = readFileSync(file, 'utf8');
    const found = [
      ...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g),
      ...text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g),
    ];
    graph.set(
      relative(src, file),
      found.map((match) =>
        relative(src, resolve(dirname(file), match[1] ?? '')).replace(/\.js$/, '.ts'),
      ),
    );
  }
  return graph;
}

describe('the architecture', () => {
  const graph = importGraph();

  it('finds the layers of the README', () => {
    const layers = new Set([...graph.keys()].map(layerOf));
    expect([...layers].sort()).toStrictEqual(Object.keys(allowed).sort());
  });

  it('has every import of src/ point inward', () => {
    expect(outwardImports(graph)).toStrictEqual([]);
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toStrictEqual([]);
  });

  it('resolves every import to a module of src/', () => {
    const missing = [...graph].flatMap(([from, targets]) =>
      targets.filter((target) => !graph.has(target)).map((target) => `${from} → ${target}`),
    );
    expect(missing).toStrictEqual([]);
  });

  it('keeps the primitives free of everything else: core imports only core and Node', () => {
    for (const file of sources(join(src, 'core'))) {
      const text = readFileSync(file, 'utf8');
      const packages = [...text.matchAll(/from\s+'([^.'][^']*)'/g)].map((m) => m[1] ?? '');
      expect(
        packages.filter((name) => !name.startsWith('node:')),
        relative(src, file),
      ).toStrictEqual([]);
    }
  });
});

describe('the architecture check itself', () => {
  // The same checks on the real graph with one import planted: each must be caught.
  const graph = importGraph();
  const planted = (from: string, to: string): Graph =>
    new Map(
      [...graph].map(([module, targets]) => [module, module === from ? [...targets, to] : targets]),
    );

  it.each([
    ['service/order-service.ts', 'config.ts'],
    ['service/order-service.ts', 'store/memory-order-store.ts'],
    ['observability/metrics.ts', 'config.ts'],
    ['core/semaphore.ts', 'order/errors.ts'],
    ['ledger/order-ledger.ts', 'service/order-service.ts'],
    ['http/order-routes.ts', 'store/memory-order-store.ts'],
    ['store/memory-order-store.ts', 'service/order-service.ts'],
  ])('catches %s importing %s', (from, to) => {
    expect(outwardImports(planted(from, to))).toStrictEqual([
      `${from} (${layerOf(from)}) imports ${to} (${layerOf(to)})`,
    ]);
  });

  it('catches a cycle, also within one layer', () => {
    const withCycle = new Map(planted('core/semaphore.ts', 'core/task-group.ts'));
    withCycle.set('core/task-group.ts', [
      ...(withCycle.get('core/task-group.ts') ?? []),
      'core/semaphore.ts',
    ]);
    expect(outwardImports(withCycle)).toStrictEqual([]);
    const found = cycles(withCycle);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      /core\/(semaphore|task-group)\.ts → .*core\/(semaphore|task-group)\.ts$/,
    );
  });
});
