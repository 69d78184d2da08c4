//! A JSON-RPC client for ERC-4337 bundlers, with our own types: they accept what real bundlers
//! (Alto, rundler, Skandha) send — quantities as hex, optional paymaster fields absent, a pending
//! receipt as `null` — where alloy's `erc4337` types do not.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::rpc::client::RpcClient;
use alloy::transports::{RpcError, TransportErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valet_core::UserOperation;
use valet_core::user_operation::Quantity;

use crate::Error;
use crate::submit::decode_validator_error;

/// `eth_estimateUserOperationGas`'s answer (v0.7 field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GasEstimate {
    /// Pre-verification gas.
    pub pre_verification_gas: Quantity,
    /// Validation (and deployment) gas.
    pub verification_gas_limit: Quantity,
    /// Execution gas.
    pub call_gas_limit: Quantity,
    /// Paymaster validation gas, when a paymaster is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paymaster_verification_gas_limit: Option<Quantity>,
    /// Paymaster postOp gas, when a paymaster is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paymaster_post_op_gas_limit: Option<Quantity>,
}

/// One fee level of `pimlico_getUserOperationGasPrice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeLevel {
    /// EIP-1559 max fee per gas.
    pub max_fee_per_gas: Quantity,
    /// EIP-1559 priority fee per gas.
    pub max_priority_fee_per_gas: Quantity,
}

/// `pimlico_getUserOperationGasPrice`'s answer: the fees the bundler will accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GasPrices {
    /// Cheapest.
    pub slow: FeeLevel,
    /// Usual.
    pub standard: FeeLevel,
    /// Fastest.
    pub fast: FeeLevel,
}

/// The transaction part of a UserOperation receipt (only what Valet reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInfo {
    /// The bundle transaction.
    pub transaction_hash: B256,
    /// Its block.
    pub block_number: Quantity,
    /// Gas the whole bundle transaction used.
    #[serde(default)]
    pub gas_used: Option<Quantity>,
}

/// `eth_getUserOperationReceipt`'s answer once the operation is included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOperationReceipt {
    /// The userOpHash.
    pub user_op_hash: B256,
    /// The EntryPoint (some bundlers omit it).
    #[serde(default)]
    pub entry_point: Option<Address>,
    /// The account.
    pub sender: Address,
    /// Its nonce.
    pub nonce: Quantity,
    /// The paymaster, if any (Alto omits the field without one).
    #[serde(default)]
    pub paymaster: Option<Address>,
    /// What the account paid, in wei.
    pub actual_gas_cost: Quantity,
    /// Gas the EntryPoint charged.
    pub actual_gas_used: Quantity,
    /// Whether the execution succeeded.
    pub success: bool,
    /// Revert data of a failed execution (absent or empty otherwise).
    #[serde(default)]
    pub reason: Option<String>,
    /// The logs the operation's execution emitted (ERC-4337: those of this operation only, not
    /// the bundle's others); extra fields of each (`blockHash`, `logIndex`, …) are ignored.
    #[serde(default)]
    pub logs: Vec<alloy::primitives::Log>,
    /// The bundle transaction.
    pub receipt: TransactionInfo,
}

/// `eth_getUserOperationByHash`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOperationByHash {
    /// The operation as sent.
    pub user_operation: UserOperation,
    /// The EntryPoint it was sent to.
    pub entry_point: Address,
    /// The bundle transaction, once included.
    #[serde(default)]
    pub transaction_hash: Option<B256>,
    /// Its block, once included.
    #[serde(default)]
    pub block_number: Option<Quantity>,
}

/// A bundler's JSON-RPC endpoint, for one EntryPoint.
///
/// ```no_run
/// # async fn example(op: valet_client::UserOperation) -> Result<(), valet_client::Error> {
/// use std::time::Duration;
///
/// use valet_client::core::ENTRY_POINT_V07;
/// use valet_client::{Bundler, BundlerClient};
///
/// let bundler = BundlerClient::new("http://127.0.0.1:4337", ENTRY_POINT_V07)?;
/// assert!(bundler.supported_entry_points().await?.contains(&ENTRY_POINT_V07));
/// // `op` signed (by `Valet::prepare`, say): send it and wait for its receipt.
/// let hash = bundler.send_user_operation(&op).await?;
/// let receipt = bundler.wait_for_receipt(hash, Duration::from_millis(500), Duration::from_secs(60)).await?;
/// println!("included in {}, success: {}", receipt.receipt.transaction_hash, receipt.success);
///
/// // Or let the client do all of that: `Bundler` is the `Submitter` that uses a bundler.
/// let submitter = Bundler::new(bundler);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BundlerClient {
    client: RpcClient,
    entry_point: Address,
    url: String,
}

impl BundlerClient {
    /// A client for the bundler at `url` (`http://…`), sending to `entry_point`.
    pub fn new(url: &str, entry_point: Address) -> Result<Self, Error> {
        let client = crate::rpc::http_client(url).map_err(|e| Error::Config(format!("bundler {e}")))?;
        Ok(Self { client, entry_point, url: url.to_string() })
    }

    /// The bundler's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The EntryPoint operations go to.
    pub fn entry_point(&self) -> Address {
        self.entry_point
    }

    async fn call<P, R>(&self, method: &'static str, params: P) -> Result<R, Error>
    where
        P: Serialize + Clone + Send + Sync + std::fmt::Debug + Unpin + 'static,
        R: DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        self.client.request(method, params).await.map_err(|e| bundler_error(method, e))
    }

    /// `eth_supportedEntryPoints`.
    pub async fn supported_entry_points(&self) -> Result<Vec<Address>, Error> {
        // An empty array, not `null`: Alto rejects `params: null`.
        self.call("eth_supportedEntryPoints", Vec::<()>::new()).await
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, Error> {
        let id: Quantity = self.call("eth_chainId", Vec::<()>::new()).await?;
        u64::try_from(id.0).map_err(|_| Error::rpc_message(format!("chain id {} out of range", id.0)))
    }

    /// `eth_estimateUserOperationGas` (sign `op` with a dummy signature of the final layout).
    pub async fn estimate_user_operation_gas(&self, op: &UserOperation) -> Result<GasEstimate, Error> {
        self.call("eth_estimateUserOperationGas", (op.clone(), self.entry_point)).await
    }

    /// `eth_sendUserOperation`: the userOpHash.
    pub async fn send_user_operation(&self, op: &UserOperation) -> Result<B256, Error> {
        self.call("eth_sendUserOperation", (op.clone(), self.entry_point)).await
    }

    /// `eth_getUserOperationReceipt`: `None` while the operation is pending.
    pub async fn get_user_operation_receipt(&self, hash: B256) -> Result<Option<UserOperationReceipt>, Error> {
        self.call("eth_getUserOperationReceipt", [hash]).await
    }

    /// `eth_getUserOperationByHash`: `None` when the bundler does not know it.
    pub async fn get_user_operation_by_hash(&self, hash: B256) -> Result<Option<UserOperationByHash>, Error> {
        self.call("eth_getUserOperationByHash", [hash]).await
    }

    /// `pimlico_getUserOperationGasPrice` (Alto's fee method).
    pub async fn gas_price(&self) -> Result<GasPrices, Error> {
        self.call("pimlico_getUserOperationGasPrice", Vec::<()>::new()).await
    }

    /// `debug_bundler_sendBundleNow` (bundlers in manual bundle mode with debug endpoints on).
    pub async fn send_bundle_now(&self) -> Result<serde_json::Value, Error> {
        self.call("debug_bundler_sendBundleNow", Vec::<()>::new()).await
    }

    /// Polls `eth_getUserOperationReceipt` every `every` until the operation is included, or
    /// fails with [`Error::Timeout`] after `timeout` (failed polls are tried again until then).
    pub async fn wait_for_receipt(
        &self,
        hash: B256,
        every: Duration,
        timeout: Duration,
    ) -> Result<UserOperationReceipt, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A poll that fails (a dropped connection, a bundler restarting) is tried again.
            match self.get_user_operation_receipt(hash).await {
                Ok(Some(receipt)) => return Ok(receipt),
                Ok(None) => {}
                Err(e) => tracing::debug!(%hash, error = %e, "polling for a receipt failed"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout { user_op_hash: hash, waited: timeout });
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// A bundler's JSON-RPC error, with the validator's error decoded when the data carries one.
fn bundler_error(method: &str, e: RpcError<TransportErrorKind>) -> Error {
    match e.as_error_resp() {
        Some(payload) => {
            let data = payload.data.as_ref().map(|d| d.get().to_string());
            let decoded =
                find_validator_error(&payload.message).or_else(|| data.as_deref().and_then(find_validator_error));
            Error::Bundler {
                method: method.to_string(),
                code: payload.code,
                message: payload.message.to_string(),
                data,
                decoded,
            }
        }
        None => Error::rpc_in(method, e),
    }
}

/// Looks for revert data naming a validator error anywhere in a bundler's message or data (Alto
/// puts the EntryPoint's `FailedOpWithRevert` inner data in different places across versions).
pub(crate) fn find_validator_error(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        let hex: String = rest[at + 2..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        rest = &rest[at + 2 + hex.len()..];
        if hex.len() < 8 || !hex.len().is_multiple_of(2) {
            continue;
        }
        let Ok(bytes) = alloy::hex::decode(&hex) else { continue };
        // The error itself, or inside an EntryPoint `FailedOpWithRevert` wrapping it.
        if let Some(d) = (0..bytes.len().saturating_sub(3)).find_map(|i| decode_validator_error(&bytes[i..])) {
            return Some(d);
        }
    }
    None
}

/// Turns a gas estimate into the operation's limits.
pub fn apply_estimate(op: &mut UserOperation, estimate: &GasEstimate) -> Result<(), Error> {
    let narrow = |field: &str, q: Quantity| {
        u128::try_from(q.0).map_err(|_| Error::rpc_message(format!("bundler estimated {field} = {}", q.0)))
    };
    op.pre_verification_gas = estimate.pre_verification_gas.0;
    op.verification_gas_limit = narrow("verificationGasLimit", estimate.verification_gas_limit)?;
    op.call_gas_limit = narrow("callGasLimit", estimate.call_gas_limit)?;
    if let Some(q) = estimate.paymaster_verification_gas_limit {
        op.paymaster_verification_gas_limit = narrow("paymasterVerificationGasLimit", q)?;
    }
    if let Some(q) = estimate.paymaster_post_op_gas_limit {
        op.paymaster_post_op_gas_limit = narrow("paymasterPostOpGasLimit", q)?;
    }
    Ok(())
}
