import pino from 'pino';

/** How long an exit waits for the lines logged before it to be written. */
export const exitLogGraceMs = 1000;

/**
 * ProcessLog is the server process's logger, writing JSON lines to stdout, and the one way
 * the process exits, so that no log write ever stands between a signal and the exit.
 */
export interface ProcessLog {
  /** Logs at `info` until its `level` is set. */
  readonly logger: pino.Logger;
  /**
   * exit ends the process with `code` once the lines logged so far are written, or after
   * {@link exitLogGraceMs} if stdout does not take them (a pipe nobody reads), or at once if
   * stdout has failed or exit was already called (with the new code then).
   */
  exit(code: number): void;
}

/**
 * openProcessLog opens the process's log on stdout: pino's asynchronous destination, whose
 * writes never block the event loop. A write that fails — a closed pipe (EPIPE), a full disk
 * (ENOSPC) — ends logging for the life of the process, silently, and never the process
 * itself: without this, pino re-throws any failure but EPIPE as an uncaught error, and its
 * synchronous flush at exit retries a failing write for ever, so the process never exits.
 */
export function openProcessLog(): ProcessLog {
  const stdout = pino.destination({ dest: 1, sync: false });
  let failed = false;
  let exitCode: number | undefined;
  const exitNow = (): void => {
    // Destroyed, its buffer is dropped and pino's flush at exit skips it.
    stdout.destroy();
    process.exit(exitCode);
  };
  stdout.on('error', () => {
    failed = true;
    if (exitCode !== undefined) exitNow();
  });
  const logger = pino(
    {},
    {
      write: (line: string) => {
        if (failed) return;
        try {
          stdout.write(line);
        } catch {
          // Closed by an exit under way (it throws once closed): the line is too late.
        }
      },
    },
  );
  return {
    logger,
    exit: (code) => {
      const exiting = exitCode !== undefined;
      exitCode = code;
      if (exiting || failed) {
        exitNow();
        return;
      }
      stdout.once('close', exitNow);
      setTimeout(exitNow, exitLogGraceMs);
      // Writes what is buffered, then closes (fd 1 itself stays open).
      stdout.end();
    },
  };
}
