-- The signed operation of an execution, stored before it is submitted: after a crash the
-- service finds it on chain or submits the very same operation again (its nonce makes a
-- second inclusion impossible).
ALTER TABLE executions ADD COLUMN operation TEXT;
