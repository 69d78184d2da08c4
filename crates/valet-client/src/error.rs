use alloy::primitives::Bytes;

/// What valet-client can fail with, saying what to do next where there is something to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pinned anvil is missing: the tools are not installed.
    #[error("anvil not found at {0}: run `make tools` (or any make target) to install the pinned tools")]
    AnvilMissing(String),
    /// Starting anvil failed.
    #[error("could not start anvil: {0}")]
    AnvilStart(String),
    /// A JSON-RPC call failed.
    #[error("RPC error: {0}")]
    Rpc(String),
    /// A key could not sign.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A deployment did not land where it must.
    #[error("deployment failed: {0}")]
    Deploy(String),
    /// valet-core refused an input.
    #[error(transparent)]
    Core(#[from] valet_core::Error),
    /// The validator refused the operation in validation (EntryPoint `AA23`), with its error.
    #[error("the chain refused the operation: {reason}")]
    Refused {
        /// The EntryPoint's reason (`AA23 reverted`, `AA24 signature error`, …).
        reason: String,
        /// The validator's revert data, if any.
        inner: Bytes,
        /// The validator's error, decoded.
        decoded: Option<String>,
    },
    /// The operation was included but its execution reverted.
    #[error("the operation was included but its execution reverted: {0}")]
    ExecutionReverted(Bytes),
}
