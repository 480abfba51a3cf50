/**
 * importDriver loads the package `name` with `load` (an `import()` of it): a driver that only
 * some users install — an optional peer dependency of order-pipeline (better-sqlite3, pg,
 * ioredis). `user` says what needs it, for the error. Rejects with an error that says what to
 * install, the import's error as its `cause`, when the package is not installed; with the
 * import's own error for any other failure.
 */
export async function importDriver<T>(
  name: string,
  user: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (!isMissingPackage(error, name)) throw error;
    throw new Error(
      `${user} needs the package ${name}, which is not installed: npm install ${name}`,
      { cause: error },
    );
  }
}

/** isMissingPackage tells whether `error` is Node's failure to find the package `name`. */
function isMissingPackage(error: unknown, name: string): boolean {
  return (
    error instanceof Error &&
    'code' in error &&
    error.code === 'ERR_MODULE_NOT_FOUND' &&
    error.message.includes(`'${name}'`)
  );
}
