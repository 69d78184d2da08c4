use std::time::Duration;

use alloy::primitives::{B256, Bytes};
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
    /// A JSON-RPC call to the node failed.
    #[error("RPC error: {0}")]
    Rpc(String),
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
    Signing(String),
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

impl Error {
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
