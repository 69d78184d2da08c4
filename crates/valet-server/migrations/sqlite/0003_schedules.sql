-- Recurring executions within a session, run by the service's scheduler. Run n is due at
-- start_at + n * every (chain time); it executes as the execution with idempotency key
-- `schedule:<id>:<n>`, so a run never executes twice, across restarts too.
CREATE TABLE schedules (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps (id),
    session_id TEXT NOT NULL REFERENCES sessions (id),
    body       TEXT NOT NULL,          -- JSON: the execute request ({"calls": [...]})
    start_at   BIGINT NOT NULL,
    every      BIGINT NOT NULL,
    max_runs   BIGINT,                 -- null: until the session ends
    next_run   BIGINT NOT NULL,        -- index of the next run to consider
    status     TEXT NOT NULL,          -- active | done | cancelled
    reason     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX schedules_by_session ON schedules (session_id);
