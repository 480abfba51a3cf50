/**
 * The schema of the SQL stores, as versioned migrations. PGlite and PostgreSQL run the
 * same statements. A migration is never edited once released: add a new version instead.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'orders and order steps',
    statements: [
      `CREATE TABLE orders (
        order_id     text PRIMARY KEY,
        request_hash text NOT NULL,
        request      jsonb NOT NULL,
        state        text NOT NULL CHECK (state IN ('running', 'finished')),
        attempt      integer NOT NULL DEFAULT 1,
        owner        text,
        lease_until  bigint,
        error_kind   text,
        outcome      jsonb,
        created_at   bigint NOT NULL,
        updated_at   bigint NOT NULL,
        finished_at  bigint
      )`,
      `CREATE INDEX orders_running_lease ON orders (lease_until) WHERE state = 'running'`,
      `CREATE TABLE order_steps (
        order_id              text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
        position              integer NOT NULL,
        name                  text NOT NULL,
        status                text NOT NULL,
        detail                text,
        duration_ms           double precision,
        compensation          text NOT NULL DEFAULT 'not_needed',
        compensation_attempts integer NOT NULL DEFAULT 0,
        next_compensation_at  bigint,
        compensation_error    text,
        needs_operator        boolean NOT NULL DEFAULT false,
        updated_at            bigint NOT NULL,
        PRIMARY KEY (order_id, name)
      )`,
      `CREATE INDEX order_steps_due ON order_steps (next_compensation_at)
        WHERE compensation IN ('pending', 'compensation_failed') AND NOT needs_operator`,
    ],
  },
];
