-- Gas sponsorship: each app's daily budget (wei, per UTC day) and the ledger of the operations
-- the service's paymaster approved for it. An operation's maximum cost is reserved against its
-- day's budget before the approval leaves the service; once the chain shows the operation it
-- counts its actual cost instead; an operation that can never be included counts nothing.
CREATE TABLE sponsorship_budgets (
    app_id           TEXT PRIMARY KEY REFERENCES apps (id),
    daily_budget_wei TEXT NOT NULL,    -- decimal, > 0 (no row: no sponsorship)
    updated_at       BIGINT NOT NULL
);

CREATE TABLE sponsored_operations (
    user_op_hash     TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps (id),
    day              BIGINT NOT NULL,  -- the UTC day it was approved on: unix seconds / 86400
    source           TEXT NOT NULL,    -- execution (built by the service) | erc7677 (pm_getPaymasterData)
    execution_id     TEXT,             -- the service's execution, for source = execution
    sender           TEXT NOT NULL,
    max_cost_wei     TEXT NOT NULL,    -- decimal: all gas limits x maxFeePerGas
    actual_cost_wei  TEXT,             -- decimal: the UserOperationEvent's actualGasCost, once spent
    state            TEXT NOT NULL,    -- reserved | spent | released | expired
    valid_until      BIGINT NOT NULL,  -- the approval's validUntil (chain time)
    transaction_hash TEXT,             -- once spent
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX sponsored_by_app_day ON sponsored_operations (app_id, day);
CREATE INDEX sponsored_by_state ON sponsored_operations (state);
