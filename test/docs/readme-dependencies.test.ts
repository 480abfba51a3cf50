import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The README's dependency table, checked against package.json: every package it declares is
// named once, with how it is declared.

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const manifest = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
};

/** How a package is declared, as the table marks it after the names of its first cell. */
type Declared = 'dependency' | 'optional peer' | 'dev';

/** documented maps each package (or `scope/*`) the table names to how it says it is declared. */
function documented(): Map<string, Declared> {
  const start = readme.indexOf('## Dependencies');
  const end = readme.indexOf('\n## ', start);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const rows = section.split('\n').filter((line) => line.startsWith('| `'));
  const named = new Map<string, Declared>();
  for (const row of rows) {
    const [cell = ''] = row.split('|').slice(1);
    const marked = /\((dev|optional peer)\)/.exec(cell)?.[1];
    const declared: Declared =
      marked === 'dev' || marked === 'optional peer' ? marked : 'dependency';
    for (const [, name = ''] of cell.matchAll(/`([^`]+)`/g)) {
      expect(named.has(name), `${name} named once`).toBe(false);
      named.set(name, declared);
    }
  }
  return named;
}

/** declaredIn is how package.json declares each package. */
function declaredIn(): Map<string, Declared> {
  const declared = new Map<string, Declared>();
  for (const name of Object.keys(manifest.dependencies)) declared.set(name, 'dependency');
  for (const name of Object.keys(manifest.devDependencies)) declared.set(name, 'dev');
  // A peer is also a devDependency (for this repository's own install): the peer is what users see.
  for (const name of Object.keys(manifest.peerDependencies)) declared.set(name, 'optional peer');
  return declared;
}

describe('the README dependency table', () => {
  it('names every package of package.json, as it is declared there', () => {
    const table = documented();
    const wrong = [...declaredIn()].flatMap(([name, declared]) => {
      const scope = name.startsWith('@') ? `${name.split('/')[0] ?? ''}/*` : undefined;
      const said = table.get(name) ?? (scope === undefined ? undefined : table.get(scope));
      return said === declared ? [] : [`${name}: ${declared} in package.json, ${said ?? 'absent'}`];
    });
    expect(wrong).toStrictEqual([]);
  });

  it('names no package that package.json does not declare', () => {
    const declared = declaredIn();
    const names = [...declared.keys()];
    const stale = [...documented().keys()].filter((name) =>
      name.endsWith('/*')
        ? !names.some((declaredName) => declaredName.startsWith(name.slice(0, -1)))
        : !declared.has(name),
    );
    expect(stale).toStrictEqual([]);
  });

  it('has every peer optional, and in devDependencies for the service', () => {
    for (const name of Object.keys(manifest.peerDependencies)) {
      expect(manifest.peerDependenciesMeta[name]?.optional, name).toBe(true);
      expect(manifest.devDependencies[name], name).toBe(manifest.peerDependencies[name]);
    }
  });
});
