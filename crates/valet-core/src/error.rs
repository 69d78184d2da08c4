use alloy_primitives::{B256, FixedBytes};

/// Everything valet-core can refuse, each naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packed session is malformed at byte `offset` (the validator's `MalformedSession`).
    #[error("malformed session at byte {offset}: {reason}")]
    MalformedSession {
        /// Where in the packed session.
        offset: usize,
        /// The validator's reason string.
        reason: &'static str,
    },
    /// A field does not fit its on-chain width.
    #[error("{field} = {value} does not fit (at most {max})")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: u128,
        /// The largest value the encoding holds.
        max: u128,
    },
    /// The operation calls something other than `execute(bytes32,bytes)` on the account.
    #[error("unsupported account function {0} (only execute(bytes32,bytes) is accepted)")]
    UnsupportedAccountFunction(FixedBytes<4>),
    /// The execution mode is not single or batch with the default exec type.
    #[error("unsupported execution mode {0}")]
    UnsupportedExecutionMode(B256),
    /// The execute calldata is not the canonical ABI encoding.
    #[error("non-canonical execution calldata ({what}) at byte {offset}")]
    NonCanonicalExecution {
        /// Which part.
        what: &'static str,
        /// Where.
        offset: usize,
    },
    /// A session spec says something that cannot become a session.
    #[error("{at}: {reason}")]
    Spec {
        /// Where in the spec ("permission 0, rule 1").
        at: String,
        /// What is wrong, naming the value.
        reason: String,
    },
    /// An operation must make 1 to 32 calls.
    #[error("an operation makes 1 to 32 calls, not {0}")]
    CallCount(usize),
}
