-- Multichain grants: one owner signature over a list of per-chain entries grants one session per
-- chain. Each chain's session is a row of its own (its chain_id, its key, its counters); the rows
-- of one grant share `grant_group` (the multichain digest the owner signs, 0x…) and stand at
-- `grant_position` (0-based) in the list signed. Both are NULL for a single-chain session.
ALTER TABLE sessions ADD COLUMN grant_group TEXT;
ALTER TABLE sessions ADD COLUMN grant_position BIGINT;
CREATE INDEX sessions_grant_group ON sessions (grant_group);
