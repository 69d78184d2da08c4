//! Submitters: what gets signed UserOperations on chain. [`Direct`] has a relayer key call
//! `EntryPoint.handleOps` (many operations per transaction); [`Bundler`] sends them to an
//! ERC-4337 bundler. Both implement [`Submitter`], so everything above is written once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, Log, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::state::{AccountOverride, StateOverride};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::{SolCall as _, SolEvent};
use tokio::sync::Mutex;
use valet_core::UserOperation;
use valet_core::user_operation::{EIP7702_INIT_MARKER, Quantity};

use crate::Error;
use crate::bundler::{BundlerClient, GasEstimate};
use crate::contracts::ValetAccountFactory;
use crate::contracts::entry_point::EntryPoint;
use crate::fees::L1DataFee;

/// A boxed future, so that [`Submitter`] can be used as `dyn Submitter`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// EIP-1559 fees for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// Max fee per gas.
    pub max_fee_per_gas: u128,
    /// Max priority fee per gas.
    pub max_priority_fee_per_gas: u128,
}

/// One included operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReceipt {
    /// The userOpHash.
    pub user_op_hash: B256,
    /// The transaction that carried it.
    pub transaction_hash: B256,
    /// That transaction's block.
    pub block_number: u64,
    /// Whether its execution succeeded.
    pub success: bool,
    /// Gas the EntryPoint charged the account for it (includes the unused-gas penalty).
    pub actual_gas_used: u128,
    /// What the account paid, in wei.
    pub actual_gas_cost: U256,
    /// Gas the whole carrying transaction used (all its operations, plus 21,000 and calldata).
    pub transaction_gas_used: Option<u64>,
    /// Revert data of a failed execution.
    pub revert_reason: Option<Bytes>,
    /// The logs this operation's execution emitted, in order: those of its calls (an NFT's
    /// `Transfer`, …) and of the account and its modules, none of the EntryPoint's and none of
    /// the other operations carried by the same transaction.
    pub logs: Vec<Log>,
}

/// What gets signed UserOperations on chain.
pub trait Submitter: Send + Sync {
    /// `"direct"` or `"bundler"`, for logs and reports.
    fn kind(&self) -> &'static str;
    /// The EntryPoint it submits to. [`crate::Valet::new`] refuses a submitter whose EntryPoint
    /// is not its deployment's: operations are signed for one EntryPoint and valid at no other.
    fn entry_point(&self) -> Address {
        valet_core::ENTRY_POINT_V07
    }
    /// Fees the submitter will accept now.
    fn fees(&self) -> BoxFuture<'_, Result<Fees, Error>>;
    /// Gas limits for `op`, which carries a dummy signature of its final length.
    fn estimate<'a>(&'a self, op: &'a UserOperation) -> BoxFuture<'a, Result<GasEstimate, Error>>;
    /// Submits `ops` and waits until each is included; receipts in the order of `ops`.
    fn submit<'a>(&'a self, ops: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, Error>>;
}

/// Direct submission: the relayer's wallet calls `handleOps` with all the operations of one
/// [`Submitter::submit`] in one transaction (the node's gas estimate simulates it first, so a
/// refused operation costs nothing). Submissions are serialised, so concurrent callers never
/// race for the relayer's nonce.
#[derive(Debug)]
pub struct Direct {
    relayer: DynProvider,
    /// The relayer's account: its transactions, one at a time.
    account: Relayer,
    entry_point: Address,
    chain_id: u64,
    /// Held while a `handleOps` is on its way; whoever holds it sends everything queued.
    lock: Arc<Mutex<()>>,
    /// Submissions waiting for the next `handleOps`.
    queue: Arc<std::sync::Mutex<Vec<Waiting>>>,
    /// What the chain charges for posting an operation to L1, if it is a rollup that does.
    l1_fee: Option<Arc<dyn L1DataFee>>,
}

/// A submission waiting to be packed into a `handleOps`.
#[derive(Debug)]
struct Waiting {
    ops: Vec<UserOperation>,
    /// A reverted transaction its operations went out in, if any.
    published: Option<B256>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<OpReceipt>, Error>>,
}

/// Gas limits [`Direct`] uses where it cannot measure. An account's first operation deploys it,
/// so its validation cannot be simulated beforehand: the deployment is measured and this much is
/// added for validating (enable-in-first-use with a large session stays well under it). A
/// fallback for the execution of an account from another factory.
const DIRECT_FIRST_VALIDATION_GAS: u128 = 250_000;
/// What the EntryPoint spends in an operation's validation phase besides the account's
/// `validateUserOp`: the nonce (a new lane's first write, 22,100), the prefund the account sends
/// it (a transfer and a deposit write), hashing the operation.
const DIRECT_ENTRY_POINT_VALIDATION_GAS: u128 = 60_000;
const DIRECT_UNDEPLOYED_CALL_GAS: u128 = 400_000;
/// EntryPoint v0.7's SenderCreator, which runs initCode.
const SENDER_CREATOR: Address = alloy::primitives::address!("0xEFC2c1444eBCC4Db75e7613d20C6a62fF67A167C");
/// EntryPoint v0.8's SenderCreator, which calls an EIP-7702 sender with its initCode's calldata.
const SENDER_CREATOR_V08: Address = alloy::primitives::address!("0x449ED7C3e6Fee6a97311d4b55475DF59C44AdD33");
const DIRECT_PER_OP_OVERHEAD: u64 = 10_000;
/// EIP-1167 minimal proxy runtime code around the implementation's address.
const EIP1167_HEAD: [u8; 10] = [0x36, 0x3d, 0x3d, 0x37, 0x3d, 0x3d, 0x3d, 0x36, 0x3d, 0x73];
const EIP1167_TAIL: [u8; 15] =
    [0x5a, 0xf4, 0x3d, 0x82, 0x80, 0x3e, 0x90, 0x3d, 0x91, 0x60, 0x2b, 0x57, 0xfd, 0x5b, 0xf3];

impl Direct {
    /// A direct submitter sending from `from` through `relayer` (a provider with `from`'s wallet),
    /// which is also paid the operations' fees, to EntryPoint v0.7 at its canonical address
    /// ([`Direct::with_entry_point`] for another).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// use alloy::network::EthereumWallet;
    /// use alloy::providers::{Provider, ProviderBuilder};
    /// use alloy::signers::local::PrivateKeySigner;
    /// use valet_client::{Direct, Valet};
    ///
    /// // The relayer: a funded key that sends `handleOps` and is paid back the operations' fees.
    /// let relayer: PrivateKeySigner = std::env::var("RELAYER_KEY")?.parse()?;
    /// let from = relayer.address();
    /// let url = "http://127.0.0.1:8545".parse()?;
    /// let provider = ProviderBuilder::new().wallet(EthereumWallet::from(relayer)).connect_http(url).erased();
    /// // One `Direct` per relayer, shared: it sends one `handleOps` at a time, packing the operations
    /// // submitted meanwhile into it, so its clients never race for the relayer's nonce.
    /// let direct = Arc::new(Direct::new(provider.clone(), from).await?);
    /// let valet = Valet::canonical(provider, direct.clone()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn new(relayer: impl Provider + 'static, from: Address) -> Result<Self, Error> {
        let relayer = relayer.erased();
        let chain_id = relayer.get_chain_id().await.map_err(rpc)?;
        Ok(Self {
            account: Relayer::new(relayer.clone(), from),
            relayer,
            entry_point: valet_core::ENTRY_POINT_V07,
            chain_id,
            lock: Arc::new(Mutex::new(())),
            queue: Arc::new(std::sync::Mutex::new(Vec::new())),
            l1_fee: None,
        })
    }

    /// This submitter sending to the EntryPoint at `entry_point` (a v0.7 EntryPoint deployed
    /// somewhere other than its canonical address: a private chain).
    #[must_use]
    pub fn with_entry_point(mut self, entry_point: Address) -> Self {
        self.entry_point = entry_point;
        self
    }

    /// A submitter to the EntryPoint at `entry_point` from the same relayer, sharing its nonce:
    /// each sends one `handleOps` at a time, and the two never race for the relayer's nonce (a
    /// service serving smart accounts on EntryPoint v0.7 and EIP-7702 accounts on v0.8 from one
    /// key). Operations for the two EntryPoints go in separate transactions.
    pub fn for_entry_point(&self, entry_point: Address) -> Self {
        Self {
            relayer: self.relayer.clone(),
            account: self.account.clone(),
            entry_point,
            chain_id: self.chain_id,
            lock: Arc::new(Mutex::new(())),
            queue: Arc::new(std::sync::Mutex::new(Vec::new())),
            l1_fee: self.l1_fee.clone(),
        }
    }

    /// This submitter on a rollup that charges for L1 data: each estimate's `preVerificationGas`
    /// also pays `l1_fee`'s figure for the operation's `handleOps` calldata, at the price per gas
    /// the operation will pay (with a tenth more), so that the relayer is paid back what
    /// posting it costs (e.g. [`crate::fees::OpStackL1Fee`] on OP chains).
    #[must_use]
    pub fn with_l1_fee(mut self, l1_fee: Arc<dyn L1DataFee>) -> Self {
        self.l1_fee = Some(l1_fee);
        self
    }

    /// The relayer's account, to send its other transactions (owners' signed revocations) in turn
    /// with the `handleOps` this submitter sends, never racing them for a nonce.
    pub fn relayer(&self) -> Relayer {
        self.account.clone()
    }

    async fn estimate_inner(&self, op: &UserOperation) -> Result<GasEstimate, Error> {
        // Execution gas as the node measures the account's call from the EntryPoint (bundlers do
        // the same). The node's figure includes the 21,000 and calldata of a transaction, which
        // the call inside handleOps does not pay: that is the margin (kept under the EntryPoint's
        // 40,000 unused-gas penalty threshold). An account not deployed yet is measured as the
        // clone its factory will deploy (an EIP-1167 proxy to the factory's implementation).
        let mut tx =
            TransactionRequest::default().from(self.entry_point).to(op.sender).input(op.call_data.clone().into());
        let mut overrides = self.delegation_override(op).await?;
        if op.factory == Some(EIP7702_INIT_MARKER) {
            // An EIP-7702 sender: measured with the code its delegation gives it, if it has none yet.
        } else if let Some(factory) = op.factory {
            match ValetAccountFactory::new(factory, &self.relayer).accountImplementation().call().await {
                Ok(implementation) => {
                    let code = [&EIP1167_HEAD[..], implementation.as_slice(), &EIP1167_TAIL[..]].concat();
                    let account = AccountOverride { code: Some(code.into()), ..AccountOverride::default() };
                    overrides = Some(StateOverride::from_iter([(op.sender, account)]));
                }
                Err(_) => tx = tx.gas_limit(0),
            }
        }
        let call_gas = if tx.gas == Some(0) {
            DIRECT_UNDEPLOYED_CALL_GAS
        } else {
            match self.relayer.estimate_gas(tx).overrides_opt(overrides).await {
                Ok(gas) => u128::from(gas),
                Err(e) => return Err(estimate_error(e, Error::ExecutionWouldRevert)),
            }
        };
        let verification = self.verification_gas(op).await?;
        // Pre-verification: the operation's share of the transaction (21,000, as one operation per
        // transaction is the worst case), its calldata and the EntryPoint's per-operation overhead.
        let packed = op.pack();
        let bytes =
            [&packed.init_code[..], &packed.call_data[..], &packed.signature[..], &packed.paymaster_and_data[..]];
        let calldata: u64 = bytes.iter().flat_map(|b| b.iter()).map(|&b| if b == 0 { 4 } else { 16 }).sum();
        let mut pre_verification = U256::from(21_000 + DIRECT_PER_OP_OVERHEAD + calldata + 12 * 32 * 4);
        if let Some(l1_fee) = &self.l1_fee {
            pre_verification += self.l1_gas(l1_fee.as_ref(), op).await?;
        }
        Ok(GasEstimate {
            pre_verification_gas: Quantity(pre_verification),
            verification_gas_limit: Quantity(U256::from(verification)),
            call_gas_limit: Quantity(U256::from(call_gas)),
            paymaster_verification_gas_limit: None,
            paymaster_post_op_gas_limit: None,
        })
    }

    /// Gas that pays the L1 data fee of `op` (alone in a `handleOps`, the worst case) at the
    /// least price per gas it may pay: its max fee, or the next block's lowest possible base fee
    /// (the latest one less an eighth, EIP-1559's largest fall) plus its priority fee if that is
    /// less. Paying at a higher price the account pays more, never the relayer.
    async fn l1_gas(&self, l1_fee: &dyn L1DataFee, op: &UserOperation) -> Result<U256, Error> {
        let data: Bytes = EntryPoint::handleOpsCall { ops: vec![(&op.pack()).into()], beneficiary: self.account.from }
            .abi_encode()
            .into();
        let fee = l1_fee.l1_fee(&data).await?;
        let block = self.relayer.get_block_by_number(Default::default()).await.map_err(rpc)?;
        let base_fee = block.and_then(|b| b.header.base_fee_per_gas).map_or(0, u128::from);
        let price = op.max_fee_per_gas.min((base_fee - base_fee / 8).saturating_add(op.max_priority_fee_per_gas));
        Ok(crate::fees::l1_gas(fee, price))
    }

    /// Validation gas as the node measures it. A deployed account's `validateUserOp` is called
    /// from the EntryPoint with the operation as it stands (its dummy signature makes the
    /// validator answer "signature failed" rather than revert) and no fee (so a fee budget is not
    /// what the measure depends on), plus [`DIRECT_ENTRY_POINT_VALIDATION_GAS`] for what the
    /// EntryPoint does around it. A first operation is measured as its factory call (from the
    /// SenderCreator, as the EntryPoint makes it) plus [`DIRECT_FIRST_VALIDATION_GAS`]. The
    /// node's figures include a transaction's 21,000 and calldata, a margin.
    async fn verification_gas(&self, op: &UserOperation) -> Result<u128, Error> {
        let overrides = self.delegation_override(op).await?;
        let measure = |tx: TransactionRequest| {
            let overrides = overrides.clone();
            async move {
                self.relayer
                    .estimate_gas(tx)
                    .overrides_opt(overrides)
                    .await
                    .map_err(|e| estimate_error(e, Error::ValidationWouldFail))
            }
        };
        if op.factory == Some(EIP7702_INIT_MARKER) {
            // Activation, as SenderCreator makes it, then the first validation (as a deployment's).
            let tx = TransactionRequest::default()
                .from(SENDER_CREATOR_V08)
                .to(op.sender)
                .input(op.factory_data.clone().into());
            return Ok(u128::from(measure(tx).await?) + DIRECT_FIRST_VALIDATION_GAS);
        }
        if let Some(factory) = op.factory {
            // The factory itself: SenderCreator swallows a failed call, so measuring it would
            // find the gas at which the factory runs out, not the gas it needs.
            let tx =
                TransactionRequest::default().from(SENDER_CREATOR).to(factory).input(op.factory_data.clone().into());
            return Ok(u128::from(measure(tx).await?) + DIRECT_FIRST_VALIDATION_GAS);
        }
        let free = UserOperation { max_fee_per_gas: 0, max_priority_fee_per_gas: 0, ..op.clone() };
        let packed = free.pack();
        let hash = packed.hash(self.entry_point, self.chain_id);
        let call = crate::contracts::account::ValetAccount::validateUserOpCall {
            userOp: (&packed).into(),
            userOpHash: hash,
            missingAccountFunds: U256::ZERO,
        };
        let tx = TransactionRequest::default()
            .from(self.entry_point)
            .to(op.sender)
            .input(alloy::sol_types::SolCall::abi_encode(&call).into());
        Ok(u128::from(measure(tx).await?) + DIRECT_ENTRY_POINT_VALIDATION_GAS)
    }

    /// For an EIP-7702 sender whose operation carries its delegation: the code it will have once
    /// the delegation is applied, to simulate with before it is.
    async fn delegation_override(&self, op: &UserOperation) -> Result<Option<StateOverride>, Error> {
        let Some(auth) = op.eip7702_auth else { return Ok(None) };
        let code = crate::client::delegation_code(auth.address);
        let account = AccountOverride { code: Some(code.to_vec().into()), ..AccountOverride::default() };
        Ok(Some(StateOverride::from_iter([(op.sender, account)])))
    }

    /// Queues `ops`; whoever gets the lock next sends every queued submission in one
    /// `handleOps` — so concurrent callers (many sessions) share transactions.
    async fn submit_inner(&self, ops: &[UserOperation]) -> Result<Vec<OpReceipt>, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Waiting {
            ops: ops.to_vec(),
            published: None,
            reply,
        });
        // A task of its own: a caller that goes away (a dropped HTTP request) never cancels a
        // handleOps carrying other callers' operations.
        let sender = Sender { relayer: self.account.clone(), entry_point: self.entry_point, chain_id: self.chain_id };
        let (lock, queue) = (self.lock.clone(), self.queue.clone());
        tokio::spawn(async move {
            let _turn = lock.lock_owned().await;
            let batch = std::mem::take(&mut *queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            if !batch.is_empty() {
                sender.send_batch(batch).await;
            }
        });
        answer.await.map_err(|_| Error::rpc_message("the submission was dropped"))?
    }
}

/// What a batch needs to be sent, owned by the task sending it.
struct Sender {
    relayer: Relayer,
    entry_point: Address,
    chain_id: u64,
}

/// How many times a batch whose `handleOps` reverted on chain (an operation that passed the
/// simulation failed at inclusion: its window closed meanwhile) is simulated again and sent without
/// the operations that fail now, before the rest are reported unknown.
const BATCH_ROUNDS: usize = 3;

impl Sender {
    /// Sends `batch` in one `handleOps`. An operation the EntryPoint refuses fails its own
    /// submission only: it is taken out and the rest is sent again — in simulation, and also when
    /// a sent `handleOps` reverts on chain (the batch is simulated again at the new block). An
    /// operation whose signed bytes went out in a transaction is never reported as simply failed:
    /// anyone may still include it, so its outcome is [`Error::OutcomeUnknown`] until the chain says.
    async fn send_batch(&self, mut batch: Vec<Waiting>) {
        let mut rounds = 0;
        while !batch.is_empty() {
            let ops: Vec<valet_core::PackedUserOperation> =
                batch.iter().flat_map(|w| w.ops.iter().map(UserOperation::pack)).collect();
            let delegations: Vec<(Address, valet_core::user_operation::Eip7702Auth)> = batch
                .iter()
                .flat_map(|w| w.ops.iter().filter_map(|op| op.eip7702_auth.map(|a| (op.sender, a))))
                .collect();
            let sent = {
                let _turn = self.relayer.lock.lock().await;
                handle_ops_delegating(&self.relayer.provider, self.entry_point, self.relayer.from, &ops, &delegations)
                    .await
            };
            match sent {
                Ok((receipt, _)) if !receipt.status() => {
                    rounds += 1;
                    let tx = receipt.transaction_hash;
                    tracing::warn!(%tx, ops = ops.len(), rounds, "handleOps reverted on chain: simulating the batch again");
                    for waiting in &mut batch {
                        waiting.published = Some(tx);
                    }
                    if rounds >= BATCH_ROUNDS {
                        let message = format!(
                            "handleOps transaction {tx} reverted on chain (attempt {rounds} of {BATCH_ROUNDS})"
                        );
                        fail_all(batch, |_| Error::OutcomeUnknown(message.clone()));
                        return;
                    }
                }
                Ok((receipt, mut included)) => {
                    for waiting in batch.drain(..) {
                        let receipts = waiting
                            .ops
                            .iter()
                            .map(|op| {
                                let hash = op.hash(self.entry_point, self.chain_id);
                                let at = included.iter().position(|i| i.user_op_hash == hash).ok_or_else(|| {
                                    Error::OutcomeUnknown(format!(
                                        "handleOps transaction {} has no event for {hash}",
                                        receipt.transaction_hash
                                    ))
                                })?;
                                Ok(included.swap_remove(at))
                            })
                            .collect();
                        let _ = waiting.reply.send(receipts);
                    }
                }
                Err(Error::Refused { op_index, reason, inner, decoded }) => {
                    // Find whose operation it was, answer it, and send the others again.
                    let mut first = 0;
                    let culprit = batch.iter().position(|w| {
                        let hit = op_index < first + w.ops.len();
                        first += w.ops.len();
                        hit
                    });
                    let Some(culprit) = culprit else {
                        let message = format!("the EntryPoint refused operation {op_index}: {reason}");
                        fail_all(batch, |_| Error::rpc_message(message.clone()));
                        return;
                    };
                    let start: usize = batch[..culprit].iter().map(|w| w.ops.len()).sum();
                    let waiting = batch.remove(culprit);
                    let refused = Error::Refused { op_index: op_index - start, reason, inner, decoded };
                    let refused = waiting.outcome(refused);
                    let _ = waiting.reply.send(Err(refused));
                }
                Err(e) => {
                    let message = e.to_string();
                    let unknown = e.outcome_unknown();
                    fail_all(batch, |_| {
                        if unknown {
                            Error::OutcomeUnknown(message.clone())
                        } else {
                            Error::rpc_message(message.clone())
                        }
                    });
                    return;
                }
            }
        }
    }
}

impl Waiting {
    /// `error` for this submission: unknown rather than failed once its operations went out in a
    /// transaction.
    fn outcome(&self, error: Error) -> Error {
        match self.published {
            Some(tx) if !error.outcome_unknown() => {
                Error::OutcomeUnknown(format!("it was published in transaction {tx}, which reverted; now: {error}"))
            }
            _ => error,
        }
    }
}

fn fail_all(batch: Vec<Waiting>, error: impl Fn(&Waiting) -> Error) {
    for waiting in batch {
        let e = waiting.outcome(error(&waiting));
        let _ = waiting.reply.send(Err(e));
    }
}

impl Submitter for Direct {
    fn kind(&self) -> &'static str {
        "direct"
    }

    fn entry_point(&self) -> Address {
        self.entry_point
    }

    fn fees(&self) -> BoxFuture<'_, Result<Fees, Error>> {
        Box::pin(async move {
            let fees = self.relayer.estimate_eip1559_fees().await.map_err(rpc)?;
            Ok(Fees { max_fee_per_gas: fees.max_fee_per_gas, max_priority_fee_per_gas: fees.max_priority_fee_per_gas })
        })
    }

    fn estimate<'a>(&'a self, op: &'a UserOperation) -> BoxFuture<'a, Result<GasEstimate, Error>> {
        Box::pin(self.estimate_inner(op))
    }

    fn submit<'a>(&'a self, ops: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, Error>> {
        Box::pin(self.submit_inner(ops))
    }
}

/// Submission through an ERC-4337 bundler: `eth_sendUserOperation`, then polling
/// `eth_getUserOperationReceipt` (which is `null` while pending).
#[derive(Debug, Clone)]
pub struct Bundler {
    /// The bundler's client.
    pub client: BundlerClient,
    /// How often to poll for receipts.
    pub poll: Duration,
    /// How long to wait for inclusion before [`Error::Timeout`].
    pub timeout: Duration,
    /// Ask for a bundle right away (`debug_bundler_sendBundleNow`; bundlers in manual mode).
    pub bundle_now: bool,
    /// The chain's node, for fees when the bundler has no fee method of its own.
    pub node: Option<DynProvider>,
}

impl Bundler {
    /// Polls every 50 ms, waits up to 60 s, leaves bundling to the bundler.
    pub fn new(client: BundlerClient) -> Self {
        Self {
            client,
            poll: Duration::from_millis(50),
            timeout: Duration::from_secs(60),
            bundle_now: false,
            node: None,
        }
    }

    /// Fees from `node` (`eth_feeHistory` / `eth_maxPriorityFeePerGas`, as alloy estimates EIP-1559
    /// fees) whenever the bundler does not answer `pimlico_getUserOperationGasPrice`: the ERC-4337
    /// bundler API has no fee method, and only some bundlers add that one.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// use alloy::providers::{Provider, ProviderBuilder};
    /// use valet_client::core::ENTRY_POINT_V07;
    /// use valet_client::{Bundler, BundlerClient, Valet};
    ///
    /// // A node to read the chain (no key: the bundler submits) and the bundler.
    /// let node = ProviderBuilder::new().connect_http("http://127.0.0.1:8545".parse()?).erased();
    /// let client = BundlerClient::new("http://127.0.0.1:4337", ENTRY_POINT_V07)?;
    /// // Fees from the node when the bundler has no fee method (the ERC-4337 bundler API has none).
    /// let bundler = Bundler::new(client).with_node(node.clone());
    /// let valet = Valet::canonical(node, Arc::new(bundler)).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_node(mut self, node: impl Provider + 'static) -> Self {
        self.node = Some(node.erased());
        self
    }

    /// Sends `ops` and waits for their receipts. A bundler's JSON-RPC error to
    /// `eth_sendUserOperation` means it did not take the operation; anything else once an
    /// operation may have reached it (no answer, a failed poll, no receipt in time) is
    /// [`Error::OutcomeUnknown`] (or [`Error::Timeout`]).
    async fn submit_inner(&self, ops: &[UserOperation]) -> Result<Vec<OpReceipt>, Error> {
        let unknown = |e: Error| match e {
            e @ (Error::Bundler { .. } | Error::OutcomeUnknown(_) | Error::Timeout { .. }) => e,
            other => Error::OutcomeUnknown(other.to_string()),
        };
        let mut hashes = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.client.send_user_operation(op).await {
                Ok(hash) => hashes.push(hash),
                // The first operation never reached it: nothing of this submission did.
                Err(e @ Error::Bundler { .. }) if i == 0 => return Err(e),
                Err(e) => return Err(Error::OutcomeUnknown(format!("sending operation {i}: {e}"))),
            }
        }
        if self.bundle_now {
            self.client.send_bundle_now().await.map_err(unknown)?;
        }
        let mut receipts = Vec::with_capacity(ops.len());
        for hash in hashes {
            let r = self.client.wait_for_receipt(hash, self.poll, self.timeout).await.map_err(unknown)?;
            receipts.push(OpReceipt {
                user_op_hash: r.user_op_hash,
                transaction_hash: r.receipt.transaction_hash,
                block_number: r.receipt.block_number.0.saturating_to(),
                success: r.success,
                actual_gas_used: r.actual_gas_used.0.saturating_to(),
                actual_gas_cost: r.actual_gas_cost.0,
                transaction_gas_used: r.receipt.gas_used.map(|g| g.0.saturating_to()),
                revert_reason: r
                    .reason
                    .as_deref()
                    .filter(|s| !s.is_empty() && *s != "0x")
                    .and_then(|s| s.parse::<Bytes>().ok()),
                // The EntryPoint's own (a bundler may count its `UserOperationRevertReason`), as
                // the direct path leaves them out.
                logs: r.logs.into_iter().filter(|l| l.address != self.client.entry_point()).collect(),
            });
        }
        Ok(receipts)
    }
}

impl Submitter for Bundler {
    fn kind(&self) -> &'static str {
        "bundler"
    }

    fn entry_point(&self) -> Address {
        self.client.entry_point()
    }

    fn fees(&self) -> BoxFuture<'_, Result<Fees, Error>> {
        Box::pin(async move {
            // The bundler's own prices when it has the (Pimlico) method: they are what it
            // accepts. Otherwise the node's, which a standard bundler checks against.
            let prices = match self.client.gas_price().await {
                Ok(prices) => prices,
                Err(e @ Error::Bundler { .. }) => {
                    let Some(node) = &self.node else {
                        return Err(Error::Config(format!(
                            "the bundler gives no fees ({e}): give it the chain's node with Bundler::with_node (the CLI \
                             and the service do) to take the fees from there"
                        )));
                    };
                    let fees = node.estimate_eip1559_fees().await.map_err(rpc)?;
                    return Ok(Fees {
                        max_fee_per_gas: fees.max_fee_per_gas,
                        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                    });
                }
                Err(e) => return Err(e),
            };
            let narrow =
                |q: Quantity| u128::try_from(q.0).map_err(|_| Error::rpc_message(format!("fee {} out of range", q.0)));
            Ok(Fees {
                max_fee_per_gas: narrow(prices.fast.max_fee_per_gas)?,
                max_priority_fee_per_gas: narrow(prices.fast.max_priority_fee_per_gas)?,
            })
        })
    }

    fn estimate<'a>(&'a self, op: &'a UserOperation) -> BoxFuture<'a, Result<GasEstimate, Error>> {
        Box::pin(self.client.estimate_user_operation_gas(op))
    }

    fn submit<'a>(&'a self, ops: &'a [UserOperation]) -> BoxFuture<'a, Result<Vec<OpReceipt>, Error>> {
        Box::pin(self.submit_inner(ops))
    }
}

/// An operation's `eip7702Auth` as alloy's signed authorization, for a type-4 transaction.
pub(crate) fn signed_authorization(
    auth: &valet_core::user_operation::Eip7702Auth,
) -> Result<alloy::eips::eip7702::SignedAuthorization, Error> {
    let nonce = u64::try_from(auth.nonce.0)
        .map_err(|_| Error::Config(format!("EIP-7702 authorization nonce {} does not fit 64 bits", auth.nonce.0)))?;
    let y_parity = u8::try_from(auth.y_parity.0)
        .ok()
        .filter(|p| *p <= 1)
        .ok_or_else(|| Error::Config(format!("EIP-7702 authorization y parity {} is not 0 or 1", auth.y_parity.0)))?;
    let inner = alloy::eips::eip7702::Authorization { chain_id: auth.chain_id.0, address: auth.address, nonce };
    Ok(alloy::eips::eip7702::SignedAuthorization::new_unchecked(inner, y_parity, auth.r.into(), auth.s.into()))
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::rpc(e)
}

/// Submits `ops` in one `handleOps` to `entry_point` from `relayer` (a provider with the wallet of
/// `from`), paying the fees back to `from`. The bundle is simulated first (`eth_call`), so a refusal costs nothing
/// and burns no nonce: it comes back as [`Error::Refused`] with the validator's error decoded.
/// Receipts are in the order of the EntryPoint's events.
pub async fn handle_ops(
    relayer: &DynProvider,
    entry_point: Address,
    from: Address,
    ops: &[valet_core::PackedUserOperation],
) -> Result<(TransactionReceipt, Vec<OpReceipt>), Error> {
    handle_ops_delegating(relayer, entry_point, from, ops, &[]).await
}

/// [`handle_ops`] for a bundle in which EIP-7702 senders delegate: `delegations` are each
/// sender's signed authorization, which the transaction carries (type 4) so the chain sets their
/// code before the EntryPoint runs; the simulation gives them that code already.
pub async fn handle_ops_delegating(
    relayer: &DynProvider,
    entry_point: Address,
    from: Address,
    ops: &[valet_core::PackedUserOperation],
    delegations: &[(Address, valet_core::user_operation::Eip7702Auth)],
) -> Result<(TransactionReceipt, Vec<OpReceipt>), Error> {
    let entry_point = EntryPoint::new(entry_point, relayer);
    let packed: Vec<EntryPoint::PackedUserOperation> = ops.iter().map(Into::into).collect();
    let mut call = entry_point.handleOps(packed, from).from(from);
    if !delegations.is_empty() {
        let overrides = StateOverride::from_iter(delegations.iter().map(|(sender, auth)| {
            let code = crate::client::delegation_code(auth.address).to_vec();
            (*sender, AccountOverride { code: Some(code.into()), ..AccountOverride::default() })
        }));
        let list = delegations.iter().map(|(_, auth)| signed_authorization(auth)).collect::<Result<Vec<_>, _>>()?;
        call = call.authorization_list(list);
        // Simulated on the pending block, the one the transaction goes into (see below), with
        // the code the authorizations give.
        call.call().block(alloy::eips::BlockId::pending()).overrides(overrides).await.map_err(refusal)?;
    } else {
        // Simulated on the pending block, the one the transaction goes into: its timestamp is
        // the wall clock on an idle chain, where the latest block's may lag (a session whose
        // window starts now would be refused "not due" against it).
        call.call().block(alloy::eips::BlockId::pending()).await.map_err(refusal)?;
    }
    // Enough for every operation's limits plus the EntryPoint's own work (as bundlers size it);
    // the node's estimate can leave an operation's inner call short of gas.
    let limit: u64 = ops
        .iter()
        .map(|op| {
            let word = |w: &B256, high: bool| {
                let half: [u8; 16] = if high { w[..16].try_into() } else { w[16..].try_into() }.expect("16 bytes");
                u128::from_be_bytes(half)
            };
            let paymaster = if op.paymaster_and_data.len() >= 52 {
                let g =
                    |from: usize| u128::from_be_bytes(op.paymaster_and_data[from..from + 16].try_into().expect("16"));
                g(20) + g(36)
            } else {
                0
            };
            word(&op.account_gas_limits, true) + word(&op.account_gas_limits, false) + paymaster + 10_000
        })
        .sum::<u128>()
        .saturating_add(100_000)
        // Each authorization a type-4 transaction carries costs up to 25,000 (EIP-7702).
        .saturating_add(25_000 * delegations.len() as u128)
        .min(30_000_000) as u64;
    let nonce = relayer.get_transaction_count(from).pending().await.map_err(rpc)?;
    let pending = call.nonce(nonce).gas(limit).send().await.map_err(|e| match e {
        alloy::contract::Error::TransportError(e) => send_error(e),
        other => refusal(other),
    })?;
    let receipt = wait_for_receipt(relayer, *pending.tx_hash()).await?;
    let logs = receipt.inner.logs();
    let reasons: Vec<(B256, Bytes)> = logs
        .iter()
        .filter(|log| log.address() == *entry_point.address())
        .filter_map(|log| EntryPoint::UserOperationRevertReason::decode_log(&log.inner).ok())
        .map(|e| (e.userOpHash, e.revertReason.clone()))
        .collect();
    let included = operation_logs(*entry_point.address(), logs)
        .into_iter()
        .map(|(e, logs)| OpReceipt {
            user_op_hash: e.userOpHash,
            transaction_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            success: e.success,
            actual_gas_used: e.actualGasUsed.saturating_to(),
            actual_gas_cost: e.actualGasCost,
            transaction_gas_used: Some(receipt.gas_used),
            revert_reason: reasons.iter().find(|(h, _)| *h == e.userOpHash).map(|(_, r)| r.clone()),
            logs,
        })
        .collect();
    Ok((receipt, included))
}

/// Splits the logs of a `handleOps` transaction by operation: each `UserOperationEvent` of
/// `entry_point`, in order, with the logs its operation's execution emitted. EntryPoint v0.7
/// runs every validation first, then emits `BeforeExecution`, then executes the operations one
/// by one, each ending with its `UserOperationEvent`: an operation's logs are those between the
/// previous operation's event (or `BeforeExecution`) and its own, less the EntryPoint's own.
/// Logs of the validation phase (an account's deployment) belong to no operation here.
pub fn operation_logs(
    entry_point: Address,
    logs: &[alloy::rpc::types::Log],
) -> Vec<(EntryPoint::UserOperationEvent, Vec<Log>)> {
    let mut operations = Vec::new();
    // None until `BeforeExecution`: nothing before it is an execution's.
    let mut span: Option<Vec<Log>> = None;
    for log in logs {
        if log.address() != entry_point {
            if let Some(span) = &mut span {
                span.push(log.inner.clone());
            }
            continue;
        }
        let topic = log.topic0().copied();
        if topic == Some(EntryPoint::BeforeExecution::SIGNATURE_HASH) {
            span = Some(Vec::new());
        } else if let Ok(event) = EntryPoint::UserOperationEvent::decode_log(&log.inner) {
            operations.push((event.data, span.replace(Vec::new()).unwrap_or_default()));
        }
    }
    operations
}

/// Polls for `hash`'s receipt from 1 ms, doubling to 200 ms, for up to two minutes (alloy's
/// pending-transaction watcher polls every 250 ms even on a local node, which would dominate
/// latency on anvil). The transaction was sent: a failed poll is tried again, and no receipt in
/// time is [`Error::OutcomeUnknown`], never a failure.
async fn wait_for_receipt(provider: &DynProvider, hash: B256) -> Result<TransactionReceipt, Error> {
    let deadline = tokio::time::Instant::now() + RECEIPT_WAIT;
    let mut every = Duration::from_millis(1);
    let mut last_error = None;
    loop {
        match provider.get_transaction_receipt(hash).await {
            Ok(Some(receipt)) => return Ok(receipt),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            let why = last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default();
            return Err(Error::OutcomeUnknown(format!(
                "transaction {hash} sent but not mined within {RECEIPT_WAIT:?}{why}"
            )));
        }
        tokio::time::sleep(every).await;
        every = (every * 2).min(Duration::from_millis(200));
    }
}

/// How long a sent transaction is waited for.
const RECEIPT_WAIT: Duration = Duration::from_secs(120);

/// An error sending a transaction: the node's answer means it was not taken (its nonce is free
/// again), unless the node says it already has it; no answer means it may have been.
fn send_error(e: alloy::transports::TransportError) -> Error {
    match e.as_error_resp() {
        Some(payload) if payload.message.contains("already known") => {
            Error::OutcomeUnknown(format!("the node already has the transaction: {}", payload.message))
        }
        Some(payload) => Error::rpc_message(format!("the node refused the transaction: {}", payload.message)),
        None => Error::OutcomeUnknown(format!("sending the transaction: {e}")),
    }
}

/// An estimate or simulation that failed: the chain's revert (made into an error by `revert`),
/// or the node's own failure ([`Error::Rpc`]: nothing was learnt about the calls).
fn estimate_error(e: alloy::transports::TransportError, revert: fn(String) -> Error) -> Error {
    let Some(payload) = e.as_error_resp() else { return Error::rpc(e) };
    if let Some(data) = payload.as_revert_data() {
        return revert(decode_revert(&data).unwrap_or_else(|| data.to_string()));
    }
    if payload.message.to_ascii_lowercase().contains("revert") {
        return revert(payload.message.to_string());
    }
    Error::rpc(e)
}

/// The relayer's account. Every transaction it sends — `handleOps` from [`Direct`], owners' signed
/// revocations, anything else — goes through here one at a time, with the nonce the node gives
/// for its pending state at that moment: two roles sharing one key never race for a nonce, and a
/// transaction the node refuses leaves no gap behind it.
#[derive(Debug, Clone)]
pub struct Relayer {
    provider: DynProvider,
    from: Address,
    /// Held from reading the nonce until the transaction is mined (or known lost).
    lock: Arc<Mutex<()>>,
}

impl Relayer {
    /// The account `from`, sending through `provider` (which holds `from`'s wallet).
    pub fn new(provider: impl Provider + 'static, from: Address) -> Self {
        Self { provider: provider.erased(), from, lock: Arc::new(Mutex::new(())) }
    }

    /// Its address.
    pub fn address(&self) -> Address {
        self.from
    }

    /// Its provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Sends `tx` from the relayer when none of its other transactions is in flight, and waits
    /// for it to be mined. It is simulated first: a revert costs nothing, uses no nonce and comes
    /// back as [`Error::TransactionWouldRevert`] with the contract's error decoded. A mined
    /// transaction that reverted is [`Error::TransactionReverted`].
    pub async fn send(&self, tx: TransactionRequest) -> Result<TransactionReceipt, Error> {
        let tx = tx.from(self.from);
        let _turn = self.lock.lock().await;
        let gas = self
            .provider
            .estimate_gas(tx.clone())
            .await
            .map_err(|e| estimate_error(e, Error::TransactionWouldRevert))?;
        let nonce = self.provider.get_transaction_count(self.from).pending().await.map_err(rpc)?;
        let pending = self
            .provider
            .send_transaction(tx.nonce(nonce).gas_limit(gas.saturating_add(gas / 5)))
            .await
            .map_err(send_error)?;
        let receipt = wait_for_receipt(&self.provider, *pending.tx_hash()).await?;
        if !receipt.status() {
            return Err(Error::TransactionReverted(receipt.transaction_hash));
        }
        Ok(receipt)
    }
}

fn refusal(e: alloy::contract::Error) -> Error {
    match e.as_decoded_interface_error::<EntryPoint::EntryPointErrors>() {
        Some(EntryPoint::EntryPointErrors::FailedOpWithRevert(f)) => Error::Refused {
            op_index: f.opIndex.saturating_to(),
            reason: f.reason.clone(),
            decoded: decode_validator_error(&f.inner),
            inner: f.inner,
        },
        Some(EntryPoint::EntryPointErrors::FailedOp(f)) => {
            Error::Refused { op_index: f.opIndex.saturating_to(), reason: f.reason, inner: Bytes::new(), decoded: None }
        }
        _ => Error::rpc(e),
    }
}

/// The validator's custom error in revert data, as `Name(field=value, …)`.
pub fn decode_validator_error(data: &[u8]) -> Option<String> {
    decode_error_in(&known_abis()[0], data)
}

/// Revert data as `Name(field=value, …)`: an error of the validator or of the demo contracts
/// (with OpenZeppelin's ERC-20/ERC-721 errors), or `Error(string)`'s message.
pub fn decode_revert(data: &[u8]) -> Option<String> {
    use alloy::sol_types::SolError as _;
    if let Ok(revert) = alloy::sol_types::Revert::abi_decode(data) {
        return Some(format!("Error(\"{}\")", revert.reason));
    }
    known_abis().iter().find_map(|abi| decode_error_in(abi, data))
}

/// The ABIs whose errors are decoded, parsed once: the validator's first.
fn known_abis() -> &'static [alloy::json_abi::JsonAbi] {
    static ABIS: std::sync::OnceLock<Vec<alloy::json_abi::JsonAbi>> = std::sync::OnceLock::new();
    ABIS.get_or_init(|| {
        vec![
            crate::contracts::SessionKeyValidator::abi::contract(),
            crate::contracts::demo::ValetDAO::abi::contract(),
            crate::contracts::demo::ValetNFT::abi::contract(),
            crate::contracts::demo::ValetToken::abi::contract(),
        ]
    })
}

fn decode_error_in(abi: &alloy::json_abi::JsonAbi, data: &[u8]) -> Option<String> {
    use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
    let (selector, rest) = data.split_first_chunk::<4>()?;
    let error = abi.errors().find(|e| e.selector().0 == *selector)?;
    let values = error.abi_decode_input(rest).ok()?;
    let show = |v: &DynSolValue| match v {
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::Address(a) => a.to_string(),
        DynSolValue::FixedBytes(w, n) => format!("0x{}", alloy::hex::encode(&w[..*n])),
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::Bytes(b) => format!("0x{}", alloy::hex::encode(b)),
        other => format!("{other:?}"),
    };
    let fields: Vec<String> =
        error.inputs.iter().zip(&values).map(|(p, v)| format!("{}={}", p.name, show(v))).collect();
    Some(format!("{}({})", error.name, fields.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{U256, address};
    use alloy::sol_types::SolError as _;

    /// The logs of a `handleOps` of two operations, as a node gives them: validation-phase logs,
    /// `BeforeExecution`, each execution's logs ending with its `UserOperationEvent`, and a fake
    /// `UserOperationEvent` emitted by an account (not the EntryPoint), which is just a log.
    #[test]
    fn each_operation_gets_the_logs_between_the_previous_event_and_its_own() {
        let entry_point = valet_core::ENTRY_POINT_V07;
        let (account, nft) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
        let rpc = |address: Address, data: alloy::primitives::LogData| alloy::rpc::types::Log {
            inner: Log { address, data },
            ..Default::default()
        };
        let note = |address: Address, n: u8| {
            rpc(address, alloy::primitives::LogData::new_unchecked(vec![B256::repeat_byte(n)], Bytes::new()))
        };
        let done = |hash: u8| EntryPoint::UserOperationEvent {
            userOpHash: B256::repeat_byte(hash),
            sender: account,
            paymaster: Address::ZERO,
            nonce: U256::ZERO,
            success: true,
            actualGasCost: U256::from(1),
            actualGasUsed: U256::from(1),
        };
        let logs = [
            note(account, 1),
            rpc(entry_point, EntryPoint::BeforeExecution {}.encode_log_data()),
            note(nft, 2),
            note(account, 3),
            rpc(entry_point, done(0x11).encode_log_data()),
            note(nft, 4),
            rpc(account, done(0x11).encode_log_data()),
            rpc(
                entry_point,
                EntryPoint::UserOperationRevertReason {
                    userOpHash: B256::repeat_byte(0x22),
                    sender: account,
                    nonce: U256::ZERO,
                    revertReason: Bytes::new(),
                }
                .encode_log_data(),
            ),
            rpc(entry_point, done(0x22).encode_log_data()),
        ];
        let split = operation_logs(entry_point, &logs);
        let topics = |logs: &[Log]| logs.iter().map(|l| (l.address, l.topics()[0])).collect::<Vec<_>>();
        assert_eq!(split.len(), 2, "the account's fake event is not an operation");
        assert_eq!(split[0].0.userOpHash, B256::repeat_byte(0x11));
        assert_eq!(topics(&split[0].1), [(nft, B256::repeat_byte(2)), (account, B256::repeat_byte(3))]);
        assert_eq!(split[1].0.userOpHash, B256::repeat_byte(0x22));
        let fake = EntryPoint::UserOperationEvent::SIGNATURE_HASH;
        assert_eq!(topics(&split[1].1), [(nft, B256::repeat_byte(4)), (account, fake)], "none of the EntryPoint's");
    }

    #[test]
    fn reverts_of_the_validator_and_demo_contracts_decode_with_field_names() {
        let voter = address!("0x9ac6b8003174218613a12b04da2338f64721294e");
        let voted = crate::contracts::demo::ValetDAO::AlreadyVoted { proposalId: U256::from(1), voter }.abi_encode();
        assert_eq!(
            decode_revert(&voted).as_deref(),
            Some(format!("AlreadyVoted(proposalId=1, voter={voter})").as_str())
        );
        let quantity = crate::contracts::demo::ValetNFT::InvalidQuantity { quantity: U256::from(21) }.abi_encode();
        assert_eq!(decode_revert(&quantity).as_deref(), Some("InvalidQuantity(quantity=21)"));
        let message = alloy::sol_types::Revert::from("no").abi_encode();
        assert_eq!(decode_revert(&message).as_deref(), Some("Error(\"no\")"));
        assert_eq!(decode_revert(&[0xde, 0xad, 0xbe, 0xef]), None);
        assert_eq!(decode_revert(&[]), None);
    }
}
