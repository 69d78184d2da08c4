-- Valet's vault (SQLite). Hex strings for addresses, ids and amounts; unix seconds for times.
CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,   -- sha256 of the API key; the key itself is never stored
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,      -- the session id (0x…)
    app_id      TEXT NOT NULL REFERENCES apps (id),
    chain_id    BIGINT NOT NULL,
    validator   TEXT NOT NULL,
    account     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    salt        TEXT NOT NULL,
    session_key TEXT NOT NULL,         -- its address
    packed      TEXT NOT NULL,         -- the packed session
    functions   TEXT NOT NULL,         -- JSON: each permission's function signature, or null
    names       TEXT NOT NULL,         -- JSON: the names the spec used
    summary     TEXT NOT NULL,         -- JSON: the approval lines
    sealed_key  TEXT NOT NULL,         -- XChaCha20-Poly1305(master key, AAD = id): nonce ‖ ciphertext
    grant_sig   TEXT,                  -- the owner's grant, once given
    status      TEXT NOT NULL,         -- proposed | active | revoked
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX sessions_by_app ON sessions (app_id, account);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps (id),
    session_id       TEXT NOT NULL REFERENCES sessions (id),
    idempotency_key  TEXT,
    request_hash     TEXT NOT NULL,
    status           TEXT NOT NULL,    -- pending | included | reverted | refused | failed
    user_op_hash     TEXT,
    transaction_hash TEXT,
    gas_used         TEXT,
    detail           TEXT,             -- JSON: the refusal or error, permission indices
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (app_id, idempotency_key)
);
CREATE INDEX executions_by_session ON executions (session_id);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id     TEXT NOT NULL,
    account    TEXT,
    session_id TEXT,
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_by_app ON audit (app_id, seq);
