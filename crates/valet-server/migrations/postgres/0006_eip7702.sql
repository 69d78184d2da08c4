-- EIP-7702 accounts: a session's account is a smart account (`smart`, a ValetAccount clone on
-- EntryPoint v0.7) or the owner's EOA delegating to ValetAccount7702 (`eip7702`, EntryPoint
-- v0.8). An eip7702 session whose EOA did not delegate to Valet yet keeps the owner's signed
-- EIP-7702 authorization (JSON, as an operation's `eip7702Auth`) until an operation used it.
ALTER TABLE sessions ADD COLUMN account_kind TEXT NOT NULL DEFAULT 'smart';
ALTER TABLE sessions ADD COLUMN delegation TEXT;
