/**
 * messageOf is the message of `error` when it is an Error, else `error` as text: for logs and
 * for what a thread or an operator reads, never for a client (see the domain's publicMessage).
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
