/**
 * The schema of the PostgreSQL store, as versioned migrations. A migration is never edited
 * once released: add a new version instead.
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
  {
    version: 2,
    name: 'one row per run of an order',
    statements: [
      `CREATE TABLE order_runs (
        seq                  bigserial PRIMARY KEY,
        run_id               text NOT NULL UNIQUE,
        order_id             text NOT NULL,
        idempotency_key      text UNIQUE,
        fingerprint          text,
        order_json           jsonb NOT NULL,
        state                text NOT NULL CHECK (state IN ('running', 'finished')),
        attempt              integer NOT NULL,
        owner                text,
        lease_until          bigint,
        error_kind           text,
        outcome              jsonb,
        compensations        jsonb NOT NULL DEFAULT '[]',
        next_compensation_at bigint,
        attention            smallint NOT NULL DEFAULT 0,
        created_at           bigint NOT NULL,
        updated_at           bigint NOT NULL,
        finished_at          bigint
      )`,
      `CREATE INDEX order_runs_order ON order_runs (order_id, seq)`,
      `CREATE INDEX order_runs_running ON order_runs (lease_until) WHERE state = 'running'`,
      `CREATE INDEX order_runs_due ON order_runs (next_compensation_at)
        WHERE next_compensation_at IS NOT NULL`,
      `CREATE INDEX order_runs_attention ON order_runs (seq) WHERE attention = 1`,
      // Orders recorded by version 1 keep their record and their idempotency: order_id was
      // their key, and their request hash is the fingerprint of the same body.
      `INSERT INTO order_runs (run_id, order_id, idempotency_key, fingerprint, order_json, state,
         attempt, owner, lease_until, error_kind, outcome, compensations, next_compensation_at,
         attention, created_at, updated_at, finished_at)
       SELECT gen_random_uuid()::text, o.order_id, o.order_id, o.request_hash,
              jsonb_strip_nulls(jsonb_build_object(
                'id', o.request->'order_id', 'amount', o.request->'amount',
                'failStep', o.request->'fail_step', 'delayMs', o.request->'delay_ms',
                'failCompensation', o.request->'fail_compensation')),
              o.state, o.attempt, o.owner, o.lease_until, o.error_kind, o.outcome,
              COALESCE(c.compensations, '[]'::jsonb),
              c.next_compensation_at, COALESCE(c.attention, 0),
              o.created_at, o.updated_at, o.finished_at
         FROM orders o
         LEFT JOIN LATERAL (
           SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                    'name', s.name, 'status', s.compensation,
                    'attempts', s.compensation_attempts,
                    'nextAttemptAt', s.next_compensation_at,
                    'lastError', s.compensation_error,
                    'needsOperator', s.needs_operator)) ORDER BY s.position) AS compensations,
                  min(s.next_compensation_at) FILTER (WHERE NOT s.needs_operator
                    AND s.compensation IN ('pending', 'compensation_failed'))
                    AS next_compensation_at,
                  max(CASE WHEN s.needs_operator
                    OR s.compensation IN ('pending', 'compensation_failed') THEN 1 ELSE 0 END)
                    AS attention
             FROM order_steps s WHERE s.order_id = o.order_id
         ) c ON o.state = 'finished'
        ORDER BY o.created_at`,
      `DROP TABLE order_steps`,
      `DROP TABLE orders`,
    ],
  },
];
