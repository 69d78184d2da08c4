-- Owners' signed revocations the service puts on chain: retried until the chain shows the session
-- revoked. One per session.
CREATE TABLE revocations (
    session_id       TEXT PRIMARY KEY REFERENCES sessions (id),
    app_id           TEXT NOT NULL REFERENCES apps (id),
    signature        TEXT NOT NULL,
    status           TEXT NOT NULL,    -- pending | included | not_needed | refused
    transaction_hash TEXT,
    attempts         BIGINT NOT NULL,
    last_error       TEXT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX revocations_by_status ON revocations (status);
-- Executions the reconciler looks at: pending and unknown.
CREATE INDEX executions_by_status ON executions (status);
