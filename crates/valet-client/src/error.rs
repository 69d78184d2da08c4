use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes};
use valet_core::Refusal;

/// What valet-client can fail with, saying what to do next where there is something to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pinned tool (anvil, Alto) is missing: where it was looked for and how to install it.
    #[error("{0}")]
    ToolMissing(String),
    /// Starting anvil or the bundler failed.
    #[error("could not start {what}: {reason}")]
    Start {
        /// `anvil` or `alto`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A setting is wrong (a URL, a key, an address).
    #[error("{0}")]
    Config(String),
    /// A JSON-RPC call to the node failed, or answered what cannot be. `message` says which call
    /// and what happened; `source` is the transport's or the decoder's own error, when there is
    /// one (reachable through [`std::error::Error::source`], to downcast).
    #[error("RPC error: {message}")]
    Rpc {
        /// What failed, with the source's text.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// An owner operation was given a key that is not the account's owner.
    #[error("key {key} is not the owner {owner} of account {account}: sign with the owner's key")]
    NotOwner {
        /// The key given.
        key: Address,
        /// The account's owner.
        owner: Address,
        /// The account.
        account: Address,
    },
    /// The fee strategy would offer more per gas than its cap allows ([`crate::fees::FeePolicy`]):
    /// nothing was signed. Try again when the chain is cheaper, or raise the cap.
    #[error(
        "the fees would be {max_fee_per_gas} wei per gas, above the cap of {cap}: nothing was signed; try again later or raise the cap"
    )]
    FeeCapExceeded {
        /// The max fee per gas the strategy came to.
        max_fee_per_gas: u128,
        /// Its cap.
        cap: u128,
    },
    /// The session is revoked already: revoking it again would pay for nothing.
    #[error("session {id} is already revoked: nothing to do")]
    AlreadyRevoked {
        /// The session id.
        id: B256,
    },
    /// The bundler answered with a JSON-RPC error.
    #[error("bundler refused {method} ({code}): {}{}", brief(message, decoded.as_deref()), hint(message))]
    Bundler {
        /// The method called.
        method: String,
        /// JSON-RPC error code (Alto: -32500 validation, -32521 execution, -32602 bad params).
        code: i64,
        /// Its message.
        message: String,
        /// Its data, as JSON text.
        data: Option<String>,
        /// The validator's error found in the message or data, decoded.
        decoded: Option<String>,
    },
    /// The operation was sent but not included in time.
    #[error(
        "operation {user_op_hash} was not included within {waited:?}; look it up later with eth_getUserOperationReceipt"
    )]
    Timeout {
        /// The userOpHash.
        user_op_hash: B256,
        /// How long we waited.
        waited: Duration,
    },
    /// A key could not sign.
    #[error("signing failed: {0}")]
    Signing(#[source] alloy::signers::Error),
    /// A deployment did not land where it must.
    #[error("deployment failed: {0}")]
    Deploy(String),
    /// valet-core refused an input.
    #[error(transparent)]
    Core(#[from] valet_core::Error),
    /// Pre-flight: the evaluator says the validator would refuse; nothing was sent.
    #[error("refused before sending: {0}")]
    Preflight(#[from] Refusal),
    /// The owner's grant signature is not the owner's.
    #[error("the grant is signed by {signer}, not by the account's owner {owner}: ask the owner to sign the grant")]
    WrongGrantSigner {
        /// Who signed.
        signer: alloy::primitives::Address,
        /// Who must.
        owner: alloy::primitives::Address,
    },
    /// The EntryPoint refused the operation in validation (`AA23` and friends), with the
    /// validator's error.
    #[error("the chain refused operation {op_index}: {reason}{}{}", decoded.as_ref().map(|d| format!(" — {d}")).unwrap_or_default(), hint(reason))]
    Refused {
        /// Which operation of the bundle.
        op_index: usize,
        /// The EntryPoint's reason (`AA23 reverted`, `AA24 signature error`, …).
        reason: String,
        /// The validator's revert data, if any.
        inner: Bytes,
        /// The validator's error, decoded.
        decoded: Option<String>,
    },
    /// Executing the calls would revert in the target contract (found while estimating gas).
    #[error("the calls would revert when executed: {0}")]
    ExecutionWouldRevert(String),
    /// Validating the operation would revert (found while measuring its validation gas).
    #[error("the operation would be refused in validation: {0}")]
    ValidationWouldFail(String),
    /// A transaction would revert (found by simulating it; nothing was sent).
    #[error("the transaction would revert: {0}")]
    TransactionWouldRevert(String),
    /// A transaction was mined and reverted.
    #[error("transaction {0} reverted")]
    TransactionReverted(B256),
    /// The operation (or the transaction carrying it) may have reached the chain, and whether it
    /// is included is not known: a connection dropped or timed out after sending, or the
    /// transaction that carried it reverted and its signed bytes are public. Look it up by its
    /// userOpHash (or wait until its nonce is used or its session expires) before calling it
    /// failed or building another.
    #[error("outcome unknown: {0}; the operation may still be included: look it up before building another")]
    OutcomeUnknown(String),
    /// The operation was included but its execution reverted (its counters are spent).
    #[error("operation {user_op_hash} was included but its calls reverted ({reason})")]
    ExecutionReverted {
        /// The userOpHash.
        user_op_hash: B256,
        /// The revert data, as hex.
        reason: String,
    },
    /// The paymaster did not give the operation its fields: its service answered an error (a
    /// sponsorship policy said no, a bad parameter), could not be reached or read, or could not
    /// sign. Nothing was sent.
    #[error(
        "paymaster {paymaster} did not sponsor the operation: {method} failed{}: {message}",
        code.map(|c| format!(" with code {c}")).unwrap_or_default()
    )]
    Paymaster {
        /// Which paymaster: its contract address, or its service's scheme and host.
        paymaster: String,
        /// What was asked (`pm_getPaymasterStubData`, `pm_getPaymasterData`).
        method: String,
        /// The service's JSON-RPC error code, if it answered one.
        code: Option<i64>,
        /// Its message, or what went wrong.
        message: String,
        /// Its error data, as JSON text.
        data: Option<String>,
    },
}

/// Any error, boxed: the source an [`Error::Rpc`] keeps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// [`Error::Rpc`] from a transport's (or a contract call's) error, kept as its source.
    pub fn rpc(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Rpc { message: source.to_string(), source: Some(Box::new(source)) }
    }

    /// [`Error::Rpc`] from what was being done and the error it met, kept as its source.
    pub fn rpc_in(doing: impl std::fmt::Display, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Rpc { message: format!("{doing}: {source}"), source: Some(Box::new(source)) }
    }

    /// [`Error::Rpc`] for an answer that cannot be (a missing block, a value out of range), which
    /// has no error of its own.
    pub fn rpc_message(message: impl Into<String>) -> Self {
        Self::Rpc { message: message.into(), source: None }
    }

    /// Whether the operation may have been sent, so that its outcome must be looked up on chain
    /// rather than taken as a failure: [`Error::OutcomeUnknown`] and [`Error::Timeout`].
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_) | Self::Timeout { .. })
    }

    /// Whether the EntryPoint refused an operation carrying initCode because its account exists
    /// already (`AA10 sender already constructed`: someone called the factory first, which anyone
    /// may). Nothing was sent; the operation built again without initCode goes through.
    pub fn already_deployed(&self) -> bool {
        match self {
            Self::Refused { reason, .. } => reason.starts_with("AA10"),
            Self::Bundler { message, .. } => message.contains("AA10"),
            _ => false,
        }
    }
}

/// A bundler's message with the validator's error decoded in place of its hex, when we have it.
fn brief(message: &str, decoded: Option<&str>) -> String {
    let Some(decoded) = decoded else { return message.to_string() };
    let cut = message
        .match_indices("0x")
        .find(|(at, _)| message[at + 2..].chars().take_while(char::is_ascii_hexdigit).count() >= 8)
        .map(|(at, _)| at);
    match cut {
        Some(at) => format!("{}{decoded}", &message[..at]),
        None => format!("{message} — {decoded}"),
    }
}

/// What to do about the EntryPoint's common refusals.
fn hint(reason: &str) -> &'static str {
    if reason.contains("AA21") {
        " (the account cannot pay for gas: send it ETH, or use a paymaster)"
    } else if reason.contains("AA22") {
        " (outside the session's window, or its allowance period has turned: check `valet session show`)"
    } else if reason.contains("AA25") {
        " (the nonce was used meanwhile by another operation on this lane: build the operation again)"
    } else {
        ""
    }
}
