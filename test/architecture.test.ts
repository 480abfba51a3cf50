import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The README's claim "dependencies point inward", checked: every import of src/ is read and
// each layer may import only the layers listed for it.

const src = fileURLToPath(new URL('../src', import.meta.url));

/** What each layer may import (besides itself and packages). */
const allowed: Record<string, readonly string[]> = {
  config: [],
  core: [],
  order: ['core'],
  ledger: ['order', 'core'],
  // Stores implement the contract the ledger declares.
  store: ['ledger', 'order', 'core'],
  pool: ['core'],
  // The service picks the memory store as its default and reads the defaults of config.ts.
  service: ['ledger', 'order', 'core', 'store', 'config'],
  observability: ['ledger', 'order', 'core', 'config'],
  http: ['service', 'ledger', 'order', 'core', 'observability'],
  // The composition root and the package's entry points see everything.
  root: ['config', 'core', 'order', 'ledger', 'store', 'pool', 'service', 'observability', 'http'],
};

function layerOf(file: string): string {
  const path = relative(src, file);
  const [first = ''] = path.split('/');
  if (path === 'config.ts') return 'config';
  return path.includes('/') ? first : 'root';
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** imports lists the relative modules a file imports, statically or dynamically. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g),
    ...text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g),
  ];
  return found.map((match) => resolve(dirname(file), match[1] ?? ''));
}

describe('the architecture', () => {
  const files = sources(src);

  it('finds the layers of the README', () => {
    const layers = new Set(files.map(layerOf));
    for (const layer of ['config', 'core', 'order', 'ledger', 'store', 'service', 'http']) {
      expect(layers.has(layer), layer).toBe(true);
    }
  });

  it('has every import of src/ point inward', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const target of imports(file)) {
        const to = layerOf(target.replace(/\.js$/, '.ts'));
        if (to === from) continue;
        if (!(allowed[from] ?? []).includes(to)) {
          wrong.push(`${relative(src, file)} (${from}) imports ${relative(src, target)} (${to})`);
        }
      }
    }
    expect(wrong).toStrictEqual([]);
  });

  it('keeps the primitives free of everything else: core imports only core and Node', () => {
    for (const file of files.filter((f) => layerOf(f) === 'core')) {
      const text = readFileSync(file, 'utf8');
      const packages = [...text.matchAll(/from\s+'([^.'][^']*)'/g)].map((m) => m[1] ?? '');
      expect(
        packages.filter((name) => !name.startsWith('node:')),
        relative(src, file),
      ).toStrictEqual([]);
    }
  });
});
