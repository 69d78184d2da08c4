//! Direct submission: a relayer key calls `EntryPoint.handleOps` with signed operations.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::{SolEvent, SolInterface};

use crate::Error;
use crate::contracts::SessionKeyValidator::SessionKeyValidatorErrors;
use crate::contracts::entry_point::EntryPoint;

/// What one included operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    /// The userOpHash.
    pub user_op_hash: B256,
    /// The transaction that carried it.
    pub transaction_hash: B256,
    /// Whether its execution succeeded.
    pub success: bool,
    /// Gas the EntryPoint charged for it.
    pub actual_gas_used: U256,
}

/// Submits `ops` in one `handleOps` from `relayer` (a provider with the relayer's wallet),
/// paying the fees back to `beneficiary`. A validation refusal comes back as [`Error::Refused`]
/// with the validator's error decoded.
pub async fn handle_ops(
    relayer: &DynProvider,
    ops: &[valet_core::PackedUserOperation],
    beneficiary: Address,
) -> Result<(TransactionReceipt, Vec<Included>), Error> {
    let entry_point = EntryPoint::new(valet_core::ENTRY_POINT_V07, relayer);
    let packed: Vec<EntryPoint::PackedUserOperation> = ops.iter().map(Into::into).collect();
    let pending = entry_point.handleOps(packed, beneficiary).send().await.map_err(refusal)?;
    let receipt = pending.get_receipt().await.map_err(|e| Error::Rpc(e.to_string()))?;
    let included = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|log| EntryPoint::UserOperationEvent::decode_log(&log.inner).ok())
        .map(|e| Included {
            user_op_hash: e.userOpHash,
            transaction_hash: receipt.transaction_hash,
            success: e.success,
            actual_gas_used: e.actualGasUsed,
        })
        .collect();
    Ok((receipt, included))
}

fn refusal(e: alloy::contract::Error) -> Error {
    match e.as_decoded_interface_error::<EntryPoint::EntryPointErrors>() {
        Some(EntryPoint::EntryPointErrors::FailedOpWithRevert(f)) => {
            Error::Refused { reason: f.reason.clone(), decoded: decode_validator_error(&f.inner), inner: f.inner }
        }
        Some(EntryPoint::EntryPointErrors::FailedOp(f)) => {
            Error::Refused { reason: f.reason, inner: Bytes::new(), decoded: None }
        }
        _ => Error::Rpc(e.to_string()),
    }
}

/// The validator's custom error in revert data, as `Name { fields }`.
pub fn decode_validator_error(data: &[u8]) -> Option<String> {
    SessionKeyValidatorErrors::abi_decode(data).ok().map(|e| format!("{e:?}"))
}
