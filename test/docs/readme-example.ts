import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The comment that marks the README's library example: the ```ts block right after it. */
export const libraryExampleMarker = '<!-- library example: type-checked and run by the tests -->';

/**
 * libraryExample is the code of the README's library example, read from the README itself so
 * that the tests and the README cannot drift. Throws if the marker or its block is missing.
 */
export function libraryExample(): string {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const at = readme.indexOf(libraryExampleMarker);
  if (at < 0) throw new Error(`README.md has no "${libraryExampleMarker}"`);
  const block = /^\s*```ts\n([\s\S]*?\n)```/.exec(readme.slice(at + libraryExampleMarker.length));
  if (block?.[1] === undefined)
    throw new Error('README.md has no ```ts block right after its marker');
  return block[1];
}
