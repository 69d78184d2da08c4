//! The account and session clients: counterfactual accounts, owner-signed operations, session
//! grants, pre-flighted session executions, what a session has left, and revocation.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::eips::eip7702::{Authorization, SignedAuthorization};
use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::k256::elliptic_curve::rand_core::OsRng;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use serde::Serialize;
use valet_core::evaluator::judge_for_inclusion;
use valet_core::session::MAX_COUNTED_PERMISSIONS;
use valet_core::spec::{Labels, SessionSpec, SpecContext, summary};
use valet_core::user_operation::Eip7702Auth;
use valet_core::{
    Call, Counters, Execution, LimitKind, OpGas, Request, Session, SessionState, UserOperation, assign_permissions,
    eip712, evaluate,
};

use crate::bundler::apply_estimate;
use crate::contracts::entry_point::EntryPoint;
use crate::contracts::{SessionKeyValidator, ValetAccountFactory};
use crate::fees::{FeeStrategy, Quoted};
use crate::paymaster::{Paymaster, attribute};
use crate::session::DUMMY_ECDSA_SIGNATURE;
use crate::submit::{OpReceipt, Submitter};
use crate::{Error, SessionHandle};

/// Where Valet's contracts are on a chain, for one kind of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The EntryPoint: v0.7 for smart accounts, v0.8 for EIP-7702 accounts.
    pub entry_point: Address,
    /// The SessionKeyValidator.
    pub validator: Address,
    /// The ValetAccountFactory (smart accounts), or the ValetAccount7702 implementation EOAs
    /// delegate to (EIP-7702 accounts).
    pub factory: Address,
    /// Which accounts this deployment serves.
    pub kind: AccountKind,
}

/// The accounts a [`Valet`] serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// `ValetAccount` clones from the factory, at counterfactual addresses (EntryPoint v0.7).
    #[default]
    Smart,
    /// Plain EOAs that delegate to ValetAccount7702 with EIP-7702: the session acts at the EOA's
    /// own address, with its own assets (EntryPoint v0.8).
    Eip7702,
}

/// A smart account: its owner, its salt, its (counterfactual) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The account's address (the same before and after deployment).
    pub address: Address,
    /// The owner key's address.
    pub owner: Address,
    /// The factory salt.
    pub salt: U256,
    /// Whether it had code when last read.
    pub deployed: bool,
}

/// A session proposed for an account, waiting for the owner's grant.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The account.
    pub account: Account,
    /// The session, resolved.
    pub session: Session,
    /// Its id.
    pub id: B256,
    /// The fresh session key (kept by the app, never shown to the owner).
    pub key: PrivateKeySigner,
    /// The EIP-712 digest the owner signs (`Grant(address account, Session session)`).
    pub digest: B256,
    /// The approval screen: what the session allows, in plain words.
    pub summary: Vec<String>,
    /// What the owner should hear before granting, though nothing is refused: a function the
    /// target's known ABI does not have ("ValetNFT has no function fooBar(uint256): the session
    /// would allow a call that always reverts"), a session longer than 30 days ("this session
    /// lasts 273 years: consider a shorter one"). Empty when there is nothing to say.
    pub warnings: Vec<String>,
    /// Each permission's function as the spec wrote it (`None` for a plain transfer): the
    /// session handle keeps them to explain refusals in the spec's words.
    pub functions: Vec<Option<String>>,
    validator: Address,
    chain_id: u64,
}

impl Proposal {
    /// The grant as EIP-712 typed data (`eth_signTypedData_v4`'s JSON: types, domain, primary
    /// type, message), for a wallet to show and sign; its hash is [`Proposal::digest`].
    pub fn typed_data(&self) -> Result<serde_json::Value, Error> {
        Ok(valet_core::eip712::grant_typed_data(&self.session, self.account.address, self.validator, self.chain_id)?)
    }

    /// The chain this session is for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// This proposal as one entry of a multichain grant ([`MultichainProposal`]).
    pub fn chain_grant(&self) -> eip712::ChainGrant {
        eip712::ChainGrant {
            chain_id: self.chain_id,
            validator: self.validator,
            account: self.account.address,
            session: self.session.clone(),
        }
    }

    /// Takes the owner's 65-byte signature of [`Proposal::digest`] and checks it is the owner's.
    ///
    /// ```no_run
    /// # use alloy::signers::local::PrivateKeySigner;
    /// # fn example(
    /// #     proposal: valet_client::Proposal, owner: PrivateKeySigner,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// use alloy::signers::SignerSync;
    ///
    /// // The owner signs the digest (a wallet: the typed data of `proposal.typed_data()?`).
    /// let signature = owner.sign_hash_sync(&proposal.digest)?;
    /// let session = proposal.grant(&signature.as_bytes())?; // refused unless the owner signed
    /// // Store `session.record()`, keep `session.key` apart; the first `execute` enables the session.
    /// # Ok(())
    /// # }
    /// ```
    pub fn grant(self, signature: &[u8]) -> Result<SessionHandle, Error> {
        check_owner_signature(signature, &self.digest, self.account.owner)?;
        Ok(SessionHandle::new(self.session, self.key, Bytes::copy_from_slice(signature), self.validator)?
            .with_functions(self.functions))
    }
}

/// Sessions on several chains granted with one owner signature: each chain's [`Proposal`] (from
/// that chain's [`Valet::propose`]), signed together as `MultichainGrant(ChainGrant[])`. Each
/// chain's validator accepts the signature only for its own entry (its chain id, its address,
/// the account and that chain's session), so a chain not listed refuses it; each chain's session
/// keeps its own uses, limits, fee budget and revocation (`docs/encoding.md` §6.8).
///
/// ```no_run
/// # use alloy::{primitives::Address, signers::local::PrivateKeySigner};
/// # async fn example(
/// #     base: valet_client::Valet, optimism: valet_client::Valet, owner: PrivateKeySigner,
/// #     spec: valet_client::SessionSpec, names: std::collections::BTreeMap<String, Address>,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use alloy::primitives::U256;
/// use alloy::signers::SignerSync;
/// use valet_client::{Labels, MultichainProposal};
///
/// let labels = Labels::default();
/// let mut proposals = Vec::new();
/// for valet in [&base, &optimism] {
///     let account = valet.account(owner.address(), U256::ZERO).await?; // the same address on both
///     proposals.push(valet.propose(&account, &spec, &names, &labels).await?);
/// }
/// let proposal = MultichainProposal::new(proposals)?;
/// println!("{}", proposal.summary.join("\n")); // "One signature grants this session on 2 chains: …"
/// let signature = owner.sign_hash_sync(&proposal.digest)?; // or a wallet: `proposal.typed_data()?`
/// let [on_base, on_optimism]: [_; 2] = proposal.grant(&signature.as_bytes())?.try_into().expect("two");
/// // `base.execute(&account, &on_base, …)` and `optimism.execute(&account, &on_optimism, …)`.
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MultichainProposal {
    /// Each chain's proposal, in the order the owner signs them.
    pub proposals: Vec<Proposal>,
    /// Each chain's entry, `hashStruct(ChainGrant)`, in the same order.
    pub entries: Vec<B256>,
    /// The EIP-712 digest the owner signs.
    pub digest: B256,
    /// The approval screen: which chains, then each chain's session in plain words.
    pub summary: Vec<String>,
}

impl MultichainProposal {
    /// Combines one proposal per chain (distinct chains, one owner) into one grant.
    pub fn new(proposals: Vec<Proposal>) -> Result<Self, Error> {
        use valet_core::signature::MAX_CHAINS;
        let Some(first) = proposals.first() else {
            return Err(Error::Config("a multichain grant needs at least one chain's proposal".into()));
        };
        if proposals.len() > MAX_CHAINS {
            return Err(Error::Config(format!(
                "a multichain grant lists at most {MAX_CHAINS} chains, not {}",
                proposals.len()
            )));
        }
        let owner = first.account.owner;
        let mut entries = Vec::with_capacity(proposals.len());
        for (i, p) in proposals.iter().enumerate() {
            if p.account.owner != owner {
                return Err(Error::Config(format!(
                    "chain {}'s account {} is owned by {}, not by {owner}: one signature grants for one owner",
                    p.chain_id, p.account.address, p.account.owner
                )));
            }
            if let Some(earlier) = proposals[..i].iter().find(|e| e.chain_id == p.chain_id) {
                return Err(Error::Config(format!(
                    "chain {} is listed twice (accounts {} and {}): one session per chain",
                    p.chain_id, earlier.account.address, p.account.address
                )));
            }
            entries.push(p.chain_grant().hash()?);
        }
        let digest = eip712::multichain_grant_digest(&entries);
        let names: Vec<String> = proposals.iter().map(|p| chain_name(p.chain_id)).collect();
        let mut summary = vec![format!(
            "One signature grants this session on {}: {}. Each chain counts its own uses and limits, and a revocation on one leaves the others as they are.",
            if proposals.len() == 1 { "1 chain".to_string() } else { format!("{} chains", proposals.len()) },
            names.join(", ")
        )];
        for (p, name) in proposals.iter().zip(&names) {
            summary.push(format!("On {name}:"));
            summary.extend(p.summary.iter().map(|line| format!("  {line}")));
        }
        Ok(Self { proposals, entries, digest, summary })
    }

    /// The grant as EIP-712 typed data for `eth_signTypedData_v4` (no chain id in its domain,
    /// so a wallet signs it on any chain); its hash is [`MultichainProposal::digest`].
    pub fn typed_data(&self) -> Result<serde_json::Value, Error> {
        let grants: Vec<_> = self.proposals.iter().map(Proposal::chain_grant).collect();
        Ok(eip712::multichain_grant_typed_data(&grants)?)
    }

    /// Takes the owner's 65-byte signature of [`MultichainProposal::digest`], checks it is the
    /// owner's, and gives each chain's session (in the proposals' order) with that chain's proof.
    pub fn grant(self, signature: &[u8]) -> Result<Vec<SessionHandle>, Error> {
        let owner = self.proposals[0].account.owner;
        check_owner_signature(signature, &self.digest, owner)?;
        let mut handles = Vec::with_capacity(self.proposals.len());
        for (position, p) in self.proposals.into_iter().enumerate() {
            let grant = valet_core::signature::multichain_grant(&self.entries, position, signature)?;
            handles.push(
                SessionHandle::new(p.session, p.key, grant, p.validator)?
                    .with_grant_kind(crate::session::GrantKind::Multichain)
                    .with_functions(p.functions),
            );
        }
        Ok(handles)
    }
}

/// A chain's name for the approval screen: the well-known ones by name, with the id.
pub fn chain_name(chain_id: u64) -> String {
    let name = match chain_id {
        1 => "Ethereum",
        10 => "OP Mainnet",
        137 => "Polygon",
        8453 => "Base",
        42161 => "Arbitrum One",
        11155111 => "Sepolia",
        11155420 => "OP Sepolia",
        84532 => "Base Sepolia",
        421614 => "Arbitrum Sepolia",
        31337 => "a local devnet",
        _ => return format!("chain {chain_id}"),
    };
    format!("{name} (chain {chain_id})")
}

/// Whether `signature` over `digest` recovers to `owner`.
fn check_owner_signature(signature: &[u8], digest: &B256, owner: Address) -> Result<(), Error> {
    let parsed = alloy::primitives::Signature::try_from(signature)
        .map_err(|e| Error::Config(format!("grant signature ({} bytes): {e}", signature.len())))?;
    let signer = parsed
        .recover_address_from_prehash(digest)
        .map_err(|e| Error::Config(format!("grant signature does not recover: {e}")))?;
    if signer != owner {
        return Err(Error::WrongGrantSigner { signer, owner });
    }
    Ok(())
}

/// A session executed: the receipt, the permission each call used, and the counters after it.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The inclusion receipt.
    pub receipt: OpReceipt,
    /// The permission index of each call.
    pub indices: Vec<u8>,
    /// The session's counters after the operation, as the evaluator predicted them.
    pub counters: Counters,
    /// Whether this operation also deployed the account.
    pub deployed_account: bool,
    /// Whether this operation also enabled the session.
    pub enabled_session: bool,
}

/// A session operation built and signed, not yet submitted (to pack several into one submission).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The signed operation.
    pub op: UserOperation,
    /// Permission indices.
    pub indices: Vec<u8>,
    /// Counters after it.
    pub counters: Counters,
    /// Whether it deploys the account.
    pub deploys: bool,
    /// Whether it enables the session.
    pub enables: bool,
}

/// What a permission has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionStatus {
    /// The contract.
    pub target: Address,
    /// The function selector.
    pub selector: FixedBytes<4>,
    /// Calls made (counted permissions only).
    pub uses: Option<u32>,
    /// Calls allowed (0 = not counted).
    pub max_uses: u32,
}

/// Serialises a `u128` amount as a decimal string: JSON numbers above 2^53 lose digits in most
/// readers, and `serde_json::Value` holds no integer above `u64::MAX` at all.
fn decimal<S: serde::Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

/// What a limit has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitStatus {
    /// `native`, `erc20` or `fees`.
    pub kind: &'static str,
    /// The token (zero for native and fees).
    pub token: Address,
    /// The cap (per period, if periodic), as a decimal string in JSON.
    #[serde(serialize_with = "decimal")]
    pub cap: u128,
    /// Spent in `period` (or in all, for a whole-session limit).
    #[serde(serialize_with = "decimal")]
    pub spent: u128,
    /// Left now: the cap if the current period has not been spent from yet.
    #[serde(serialize_with = "decimal")]
    pub left: u128,
    /// Seconds per period (0 = whole session).
    pub period_seconds: u64,
    /// The period `spent` belongs to.
    pub period: u64,
    /// The period it is now.
    pub current_period: u64,
}

/// What a session may spend on network fees, and has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeeStatus {
    /// `sponsored` (a paymaster must pay every operation), `budget` (a budget over the whole
    /// session, and perhaps fee limits per period too) or `per_period` (only fee limits per
    /// period, in `limits`).
    pub mode: &'static str,
    /// The budget in wei (over the whole session), as a decimal string in JSON.
    #[serde(serialize_with = "decimal")]
    pub budget: u128,
    /// Wei committed so far, at each operation's maximum cost.
    #[serde(serialize_with = "decimal")]
    pub spent: u128,
    /// Wei left of the budget.
    #[serde(serialize_with = "decimal")]
    pub left: u128,
    /// The paymasters allowed to pay (any, if empty).
    pub paymasters: Vec<Address>,
}

/// Where a session stands on an account, read from the validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// Session id.
    pub id: B256,
    /// Where it stands on chain.
    pub state: Standing,
    /// Whether an operation would be accepted now (state, window, epoch, uses); see `reason`.
    pub usable: bool,
    /// Why not, when it is not, and what to do.
    pub reason: Option<String>,
    /// The time it was read at: Valet's clock ([`Valet::now`]).
    pub now: u64,
    /// First valid second.
    pub valid_after: u64,
    /// Last valid second.
    pub valid_until: u64,
    /// Operations made.
    pub uses: u32,
    /// Operations allowed (0 = not counted).
    pub max_uses: u32,
    /// Per permission.
    pub permissions: Vec<PermissionStatus>,
    /// Per limit.
    pub limits: Vec<LimitStatus>,
    /// Network fees.
    pub fees: FeeStatus,
}

/// The counters of a session and where the validator says it stands (`sessionState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The counters, for the evaluator.
    pub counters: Counters,
    /// Where it stands.
    pub state: Standing,
}

/// A revocation for the owner to sign ([`Valet::revocation`], [`Valet::revocation_of_all`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// The account.
    pub account: Address,
    /// What it revokes.
    pub of: Revoked,
    /// The EIP-712 digest the owner signs (as a raw hash, not an EIP-191 message).
    pub digest: B256,
    /// The same as `eth_signTypedData_v4` JSON, for wallets.
    pub typed_data: serde_json::Value,
}

/// What a [`Revocation`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoked {
    /// One session, by id.
    Session(B256),
    /// Every session of the account, and every grant signed before: valid while the account is
    /// at `epoch`.
    All {
        /// The account's epoch when it was made.
        epoch: u64,
    },
}

/// Where a session stands on an account, as the validator says. Serialised (and shown by
/// [`Standing::as_str`]) as `none`, `enabled`, `revoked`, `voided` or `not_installed`, the
/// names the service's API and the CLI's `--json` have always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Standing {
    /// Granted (or not granted at all: the chain cannot tell), not yet enabled: its grant enables
    /// it with its first operation. An account not deployed yet stands here too, as its first
    /// operation deploys it with the validator installed.
    #[serde(rename = "none")]
    NotEnabled,
    /// Enabled: its operations are judged by its counters.
    Enabled,
    /// Revoked by the owner: it can never act again.
    Revoked,
    /// Voided: all sessions of the account were revoked, or the validator reinstalled, since its
    /// grant; no operation of it can be accepted.
    Voided,
    /// The validator is not installed on the (deployed) account: no session can act for it.
    NotInstalled,
}

impl Standing {
    /// Its wire name: `none`, `enabled`, `revoked`, `voided`, `not_installed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotEnabled => "none",
            Self::Enabled => "enabled",
            Self::Revoked => "revoked",
            Self::Voided => "voided",
            Self::NotInstalled => "not_installed",
        }
    }

    /// Whether no operation of the session can ever be accepted again (revoked or voided).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Revoked | Self::Voided)
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client: a chain, a submitter, and Valet's deployment.
#[derive(Clone)]
pub struct Valet {
    provider: DynProvider,
    submitter: Arc<dyn Submitter>,
    deployment: Deployment,
    chain_id: u64,
    /// Who pays session operations' fees instead of the account, if anyone.
    paymaster: Option<Arc<dyn Paymaster>>,
    /// How the submitter's quoted fees become an operation's.
    fees: Arc<dyn FeeStrategy>,
}

impl std::fmt::Debug for Valet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valet")
            .field("deployment", &self.deployment)
            .field("chain_id", &self.chain_id)
            .field("submitter", &self.submitter.kind())
            .field("paymaster", &self.paymaster.as_ref().map(|p| p.name()))
            .field("fees", &self.fees)
            .finish()
    }
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::rpc(e)
}

impl Valet {
    /// A client reading the chain through `provider` (any alloy provider: it is kept type-erased,
    /// as a [`DynProvider`], so that the client is one type whatever its transport and layers)
    /// and submitting through `submitter`. Fails when Valet's contracts are not at `deployment`
    /// or `submitter` sends to another EntryPoint.
    ///
    /// ```no_run
    /// # use alloy::{primitives::Address, providers::DynProvider};
    /// # async fn example(provider: DynProvider, relayer: Address) -> Result<(), valet_client::Error> {
    /// use std::sync::Arc;
    ///
    /// use valet_client::{Deployment, Direct, Valet};
    ///
    /// // `provider` signs as `relayer`, which sends the operations to the EntryPoint (see `Direct`).
    /// let submitter = Arc::new(Direct::new(provider.clone(), relayer).await?);
    /// // Where `valet deploy` puts Valet on every chain; a deployment elsewhere names its addresses.
    /// let valet = Valet::new(provider, submitter, Deployment::canonical()).await?; // checks Valet is there
    /// println!("Valet on chain {}", valet.chain_id());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn new(
        provider: impl Provider + 'static,
        submitter: Arc<dyn Submitter>,
        deployment: Deployment,
    ) -> Result<Self, Error> {
        let provider = provider.erased();
        if submitter.entry_point() != deployment.entry_point {
            return Err(Error::Config(format!(
                "the {} submitter sends to EntryPoint {}, but this deployment's is {}: operations signed for one \
                 are valid at no other",
                submitter.kind(),
                submitter.entry_point(),
                deployment.entry_point
            )));
        }
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        for (name, address) in [("validator", deployment.validator), ("factory", deployment.factory)] {
            if provider.get_code_at(address).await.map_err(rpc)?.is_empty() {
                return Err(Error::Config(format!(
                    "no {name} contract at {address} on chain {chain_id}: deploy Valet there with `valet deploy --rpc-url …`, or check the address"
                )));
            }
        }
        Ok(Self { provider, submitter, deployment, chain_id, paymaster: None, fees: Arc::new(Quoted) })
    }

    /// This client with session operations paid by `paymaster`: [`Valet::prepare`] (and
    /// [`Valet::execute`]) ask it for stub paymaster fields before estimating gas and for the
    /// final ones before the session key signs, and pre-flight judges the operation with them
    /// (a session that lists other paymasters is refused before anything is sent).
    #[must_use]
    pub fn with_paymaster(mut self, paymaster: Arc<dyn Paymaster>) -> Self {
        self.paymaster = Some(paymaster);
        self
    }

    /// This client choosing operations' fees with `strategy` from what the submitter quotes
    /// (the quote as it is by default): a bump, a floor, a cap, a replacement's rule
    /// ([`crate::fees::FeePolicy`]), or your own.
    #[must_use]
    pub fn with_fees(mut self, strategy: Arc<dyn FeeStrategy>) -> Self {
        self.fees = strategy;
        self
    }

    /// The paymaster session operations go through, if any.
    pub fn paymaster(&self) -> Option<&Arc<dyn Paymaster>> {
        self.paymaster.as_ref()
    }

    /// A client for Valet at its canonical addresses ([`Deployment::canonical`]: wherever
    /// `valet deploy` ran, the devnet included).
    pub async fn canonical(provider: impl Provider + 'static, submitter: Arc<dyn Submitter>) -> Result<Self, Error> {
        Self::new(provider, submitter, Deployment::canonical()).await
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The deployment.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// The provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The submitter.
    pub fn submitter(&self) -> &Arc<dyn Submitter> {
        &self.submitter
    }

    /// Valet's clock: the latest of the latest block's timestamp, the pending block's (the time
    /// the node would give the next block, where it says) and this machine's wall clock, in unix
    /// seconds. No one alone will do. A chain's last block lags the wall clock whenever no block
    /// was made for a while (an idle devnet, a quiet chain), yet the next block will carry the
    /// wall-clock time: a session started from the last block would start in the past and lose
    /// that lag from its window. A chain may run ahead of the wall clock (anvil after time
    /// travel), where the wall clock would name a time already gone; and on such a chain, idle,
    /// the last block lags too: only the pending block tells the time the next block will have
    /// (its clock is the wall clock plus the jump). Judged by the last block there, a session
    /// that had expired looked usable and its operation went to the EntryPoint, which refused it
    /// `AA22 expired`. Session windows start from this clock, pre-flight judges operations by it
    /// ([`Valet::prepare`], with [`INCLUSION_MARGIN`]), and the service's scheduler runs by it.
    pub async fn now(&self) -> Result<u64, Error> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let pending = self.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Pending);
        let (latest, pending) = tokio::join!(self.chain_time(), pending);
        // A node without a pending block (some answer null, or an error) still has its latest.
        let pending = pending.ok().flatten().map_or(0, |b| b.header.timestamp);
        Ok(latest?.max(pending).max(wall))
    }

    /// The latest block's timestamp (the chain's own clock, as of its last block).
    pub async fn chain_time(&self) -> Result<u64, Error> {
        let block = self.provider.get_block_by_number(Default::default()).await.map_err(rpc)?;
        Ok(block.ok_or_else(|| Error::rpc_message("no latest block"))?.header.timestamp)
    }

    /// The account of `owner` with `salt`: its counterfactual address and whether it is deployed.
    /// For a client of EIP-7702 accounts ([`AccountKind::Eip7702`]) the account is `owner`'s
    /// EOA itself (`salt` must be 0), "deployed" once it delegates to Valet's implementation and
    /// has activated it.
    pub async fn account(&self, owner: Address, salt: U256) -> Result<Account, Error> {
        if self.deployment.kind == AccountKind::Eip7702 {
            if !salt.is_zero() {
                return Err(Error::Config(format!(
                    "salt {salt}: an EIP-7702 account is the EOA {owner} itself, it has no salt"
                )));
            }
            return Ok(Account { address: owner, owner, salt, deployed: self.is_deployed(owner).await? });
        }
        let factory = ValetAccountFactory::new(self.deployment.factory, &self.provider);
        let address = factory.getAddress(owner, salt).call().await.map_err(rpc)?;
        Ok(Account { address, owner, salt, deployed: self.is_deployed(address).await? })
    }

    /// Whether `address` has code; for EIP-7702 accounts, whether the EOA delegates to Valet's
    /// implementation and has activated it (the validator is installed for it).
    async fn is_deployed(&self, address: Address) -> Result<bool, Error> {
        if self.deployment.kind == AccountKind::Eip7702 {
            return Ok(self.is_delegated(address).await?
                && SessionKeyValidator::new(self.deployment.validator, &self.provider)
                    .isInitialized(address)
                    .call()
                    .await
                    .map_err(rpc)?);
        }
        Ok(!self.provider.get_code_at(address).await.map_err(rpc)?.is_empty())
    }

    /// Makes `account`'s EOA leave Valet, in one transaction of its own sent through `wallet`
    /// (a [`crate::Relayer`] of the EOA itself, which pays the gas): it voids every session and
    /// grant (the validator uninstalls the EOA and moves its epoch) and delegates the EOA to `to`
    /// (`Address::ZERO`: a plain EOA again). Coming back later finds nothing alive: the next
    /// [`Valet::upgrade`] starts afresh.
    pub async fn leave(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
        wallet: &crate::Relayer,
        to: Address,
    ) -> Result<alloy::rpc::types::TransactionReceipt, Error> {
        use alloy::network::TransactionBuilder7702;
        check_owner(account, owner)?;
        if self.deployment.kind != AccountKind::Eip7702 {
            return Err(Error::Config(format!(
                "{} is a smart account: only an EIP-7702 account leaves",
                account.address
            )));
        }
        if wallet.address() != account.address {
            return Err(Error::Config(format!(
                "the EOA {} sends its own leaving transaction, not {}",
                account.address,
                wallet.address()
            )));
        }
        // The EOA's own transaction bumps its nonce before the authorization is applied.
        let nonce = self.provider.get_transaction_count(account.address).pending().await.map_err(rpc)?;
        let away = Authorization { chain_id: U256::from(self.chain_id), address: to, nonce: nonce + 1 };
        let signature = owner.sign_hash(&away.signature_hash()).await.map_err(Error::Signing)?;
        // Called on the validator from the EOA itself (its code is already gone when this runs):
        // msg.sender is the account, as when the account uninstalls the module.
        let uninstall = crate::contracts::SessionKeyValidator::onUninstallCall::new((Bytes::new(),)).abi_encode();
        let tx = alloy::rpc::types::TransactionRequest::default()
            .to(self.deployment.validator)
            .input(Bytes::from(uninstall).into())
            .with_authorization_list(vec![away.into_signed(signature)]);
        wallet.send(tx).await
    }

    /// Whether the EOA `address`'s code delegates to Valet's 7702 implementation
    /// (`0xef0100 ‖ implementation`).
    pub async fn is_delegated(&self, address: Address) -> Result<bool, Error> {
        let code = self.provider.get_code_at(address).await.map_err(rpc)?;
        Ok(code[..] == delegation_code(self.deployment.factory)[..])
    }

    /// The EIP-7702 authorization `account`'s EOA signs to delegate to Valet's implementation on
    /// this chain (at its current nonce), or `None` when it already does. Sign its
    /// `signature_hash()` with the EOA's key (a raw hash: wallets that support EIP-7702 have a
    /// method of their own for it) and give the result to [`SessionHandle::with_authorization`]:
    /// the session's first operation then carries it, and delegates, activates, enables and
    /// uses in one transaction.
    pub async fn delegation(&self, account: &Account) -> Result<Option<Authorization>, Error> {
        if self.deployment.kind != AccountKind::Eip7702 {
            return Err(Error::Config(format!(
                "{} is a smart account: only EIP-7702 accounts (an EOA with Deployment::eip7702) delegate",
                account.address
            )));
        }
        if self.is_delegated(account.address).await? {
            return Ok(None);
        }
        let nonce = self.provider.get_transaction_count(account.address).await.map_err(rpc)?;
        Ok(Some(Authorization { chain_id: U256::from(self.chain_id), address: self.deployment.factory, nonce }))
    }

    /// [`Valet::delegation`] signed by `owner` (the EOA's key), ready for
    /// [`SessionHandle::with_authorization`]; `None` when the EOA already delegates to Valet.
    pub async fn sign_delegation(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
    ) -> Result<Option<Eip7702Auth>, Error> {
        check_owner(account, owner)?;
        let Some(authorization) = self.delegation(account).await? else { return Ok(None) };
        let signature = owner.sign_hash(&authorization.signature_hash()).await.map_err(Error::Signing)?;
        Ok(Some(eip7702_auth(authorization.into_signed(signature))))
    }

    /// Makes `account`'s EOA a Valet account now, with an owner operation: delegates it to
    /// Valet's implementation (the owner signs the authorization) unless it already does, and
    /// activates it, which voids every session and grant an earlier delegation left. Then grants
    /// signed from now on enable at once. Refused for an EOA that is a Valet account already.
    pub async fn upgrade(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
    ) -> Result<OpReceipt, Error> {
        check_owner(account, owner)?;
        if self.deployment.kind != AccountKind::Eip7702 {
            return Err(Error::Config(format!("{} is a smart account: there is nothing to upgrade", account.address)));
        }
        if self.is_deployed(account.address).await? {
            return Err(Error::Config(format!(
                "{} already delegates to Valet's account {} and has activated it",
                account.address, self.deployment.factory
            )));
        }
        // The activation runs in the operation's execution, as the EOA calling itself: after
        // validation (the owner's signature, which needs no module), outside ERC-7562's rules
        // (re-activating draws a new epoch from the block), and with no initCode (Alto 0.0.20
        // cannot send an initCode with calldata beside a delegation).
        let activate = crate::contracts::account_7702::ValetAccount7702::activateCall {}.abi_encode();
        let call = Call { target: account.address, value: U256::ZERO, data: activate.into() };
        self.owner_op(account, owner, Execution::Single(call).encode()).await
    }

    /// An operation of `account` with `call_data` at `nonce`, deploying the account if it is not
    /// yet, with the submitter's fees and `signature` (final, or a dummy for estimation).
    async fn draft(
        &self,
        account: &Account,
        deployed: bool,
        nonce: U256,
        call_data: Bytes,
        signature: Bytes,
    ) -> Result<UserOperation, Error> {
        let fees = self.fees.fees(self.submitter.fees().await?).await?;
        let (factory, factory_data) = if deployed {
            (None, Bytes::new())
        } else if self.deployment.kind == AccountKind::Eip7702 {
            // EntryPoint v0.8's SenderCreator calls the EOA's activate() before validation.
            let activate = crate::contracts::account_7702::ValetAccount7702::activateCall {}.abi_encode();
            (Some(valet_core::user_operation::EIP7702_INIT_MARKER), activate.into())
        } else {
            let data = ValetAccountFactory::createAccountCall { owner: account.owner, salt: account.salt }.abi_encode();
            (Some(self.deployment.factory), data.into())
        };
        Ok(UserOperation {
            sender: account.address,
            nonce,
            factory,
            factory_data,
            call_data,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            signature,
            delegate: (self.deployment.kind == AccountKind::Eip7702).then_some(self.deployment.factory),
            ..UserOperation::default()
        })
    }

    /// The delegation `op` of an EIP-7702 account must carry: none once the EOA delegates to
    /// Valet's implementation, else `authorization`, checked against the chain first (a stale one
    /// would be skipped by the chain and the operation refused for an EOA without code).
    async fn carry_delegation(&self, op: &mut UserOperation, authorization: Option<Eip7702Auth>) -> Result<(), Error> {
        if self.deployment.kind != AccountKind::Eip7702 {
            return Ok(());
        }
        if self.submitter.kind() == "bundler" && op.factory.is_some() {
            return Err(Error::Config(format!(
                "{} is not a Valet account yet (delegated to {} and activated), and a bundler cannot activate it in a \
                 session's operation (Alto 0.0.20 sends the 0x7702 initCode's calldata where EntryPoint v0.8 does \
                 not read it, and hashes the operation without it): upgrade the EOA first (Valet::upgrade, one owner \
                 operation), or submit directly",
                op.sender, self.deployment.factory
            )));
        }
        if self.is_delegated(op.sender).await? {
            return Ok(());
        }
        let Some(auth) = authorization else {
            return Err(Error::Config(format!(
                "{} does not delegate to Valet's account {} yet: the owner signs a delegation first \
                 (Valet::sign_delegation, then SessionHandle::with_authorization), or upgrades the EOA (Valet::upgrade)",
                op.sender, self.deployment.factory
            )));
        };
        let nonce = self.provider.get_transaction_count(op.sender).await.map_err(rpc)?;
        // Who signed it: the chain would delegate that address, not this account.
        let signed = crate::submit::signed_authorization(&auth)?;
        let signer = alloy::primitives::Signature::new(signed.r(), signed.s(), signed.y_parity() == 1)
            .recover_address_from_prehash(&signed.signature_hash())
            .ok();
        let wrong = if signer != Some(op.sender) {
            Some(match signer {
                Some(signer) => format!("is signed by {signer}, not by the EOA"),
                None => "has a signature that recovers to no key".to_string(),
            })
        } else if auth.address != self.deployment.factory {
            Some(format!("delegates to {}, not to Valet's account {}", auth.address, self.deployment.factory))
        } else if auth.chain_id.0 != U256::from(self.chain_id) {
            Some(format!("is for chain {}, not {}", auth.chain_id.0, self.chain_id))
        } else if auth.nonce.0 != U256::from(nonce) {
            Some(format!(
                "was signed at the EOA's nonce {}, but it is at {nonce} now (it sent a transaction since)",
                auth.nonce.0
            ))
        } else {
            None
        };
        if let Some(wrong) = wrong {
            return Err(Error::Config(format!(
                "the EIP-7702 authorization of {} {wrong}: sign a new one (Valet::sign_delegation)",
                op.sender
            )));
        }
        op.eip7702_auth = Some(auth);
        Ok(())
    }

    /// The full nonce of `account` on `key` (`EntryPoint.getNonce`; 0 before deployment).
    pub async fn nonce(&self, account: Address, key: U256) -> Result<U256, Error> {
        let entry_point = EntryPoint::new(self.deployment.entry_point, &self.provider);
        let key = alloy::primitives::aliases::U192::from(key);
        entry_point.getNonce(account, key).call().await.map_err(rpc)
    }

    /// The session's counters on `account`, from the validator's views.
    pub async fn counters(&self, account: Address, session: &Session) -> Result<Counters, Error> {
        Ok(self.chain_state(account, session).await?.counters)
    }

    /// The session's counters on `account` and where the validator says it stands.
    pub async fn chain_state(&self, account: Address, session: &Session) -> Result<ChainState, Error> {
        let validator = SessionKeyValidator::new(self.deployment.validator, &self.provider);
        let id = session.id()?;
        let packed = session.encode()?;
        let view = validator.sessionState(account, packed).call().await.map_err(rpc)?;
        let mut installed = validator.isInitialized(account).call().await.map_err(rpc)?;
        let (stored, state) = match view.state {
            0 => (SessionState::None, Standing::NotEnabled),
            1 => (SessionState::Enabled, Standing::Enabled),
            2 => (SessionState::Revoked, Standing::Revoked),
            // Voided and not installed: the evaluator refuses on the epoch or the installation
            // before the stored state matters.
            3 => (SessionState::None, Standing::Voided),
            // An account not deployed yet: its first operation deploys it with the validator
            // installed, before validation (an EIP-7702 account: delegates and activates it) —
            // unless the session names another epoch than the account's (an EOA that left Valet
            // since the grant): void for good.
            _ if !self.is_deployed(account).await? => {
                installed = true;
                let current = validator.accountEpoch(account).call().await.map_err(rpc)?;
                if session.epoch != current {
                    (SessionState::None, Standing::Voided)
                } else {
                    (SessionState::None, Standing::NotEnabled)
                }
            }
            _ => (SessionState::None, Standing::NotInstalled),
        };
        let mut counters = Counters {
            state: stored,
            session_uses: view.uses.saturating_to(),
            fees_spent: view.feesSpent.saturating_to(),
            installed,
            account_epoch: validator.accountEpoch(account).call().await.map_err(rpc)?,
            ..Counters::default()
        };
        for p in 0..session.permissions.len().min(MAX_COUNTED_PERMISSIONS) {
            if session.permissions[p].max_uses != 0 {
                let uses = validator.permissionUses(account, id, U256::from(p)).call().await.map_err(rpc)?;
                counters.permission_uses[p] = uses.saturating_to();
            }
        }
        for l in 0..session.limits.len() {
            let usage = validator.limitUsage(account, id, U256::from(l)).call().await.map_err(rpc)?;
            counters.limits.push((usage.spent.saturating_to(), usage.period.saturating_to()));
        }
        Ok(ChainState { counters, state })
    }

    /// Proposes a session for `account` from `spec`: a fresh session key, the session resolved
    /// now under the account's current epoch, the digest for the owner to sign and the summary.
    /// `names` are the names the spec may use for contracts and tokens; `labels` name them back.
    ///
    /// ```no_run
    /// # use alloy::{primitives::Address, signers::local::PrivateKeySigner};
    /// # async fn example(
    /// #     valet: valet_client::Valet, owner: PrivateKeySigner, nft: Address,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// use alloy::primitives::U256;
    /// use alloy::signers::SignerSync;
    /// use valet_client::{Labels, SessionSpec};
    ///
    /// let account = valet.account(owner.address(), U256::ZERO).await?;
    /// let spec = SessionSpec::from_toml(
    ///     r#"valid_for = "1h"
    ///        fees = { budget = "0.01 ether" }
    ///        [[permission]]
    ///        target = "NFT"
    ///        function = "mint(address to, uint256 quantity)"
    ///        rules = [{ arg = "to", eq = "$account" }]
    ///        max_uses = 3"#,
    /// )?;
    /// let names = [("NFT".to_string(), nft)].into(); // what the spec's names stand for
    /// let labels = Labels { names: [(nft, "NFT".to_string())].into(), ..Labels::default() }; // and back
    /// let proposal = valet.propose(&account, &spec, &names, &labels).await?;
    /// // The owner's approval screen; then their one signature (a wallet signs the same digest
    /// // from `proposal.typed_data()?`, with `eth_signTypedData_v4`).
    /// println!("{}", proposal.summary.join("\n"));
    /// let signature = owner.sign_hash_sync(&proposal.digest)?;
    /// let session = proposal.grant(&signature.as_bytes())?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn propose(
        &self,
        account: &Account,
        spec: &SessionSpec,
        names: &BTreeMap<String, Address>,
        labels: &Labels,
    ) -> Result<Proposal, Error> {
        let account_epoch = self.account_epoch(account.address).await?;
        if self.deployment.kind == AccountKind::Eip7702 && !self.is_deployed(account.address).await? {
            let validator = SessionKeyValidator::new(self.deployment.validator, &self.provider);
            if validator.isInitialized(account.address).call().await.map_err(rpc)? {
                // Its activation will void what an earlier delegation left, this grant with it.
                return Err(Error::Config(format!(
                    "{} still holds sessions from an earlier delegation to Valet: activating it again voids them, and \
                     would void a grant signed now too; upgrade it first (Valet::upgrade), then propose",
                    account.address
                )));
            }
        }
        let chain_time = self.chain_time().await?;
        let now = self.now().await?;
        // Straight from the OS (a user-space RNG keeps its output buffered: `random()`'s kept
        // the key's bytes), and after the last await: the key is never part of this future's
        // state, which nothing wipes.
        let key = PrivateKeySigner::random_with(&mut OsRng);
        let ctx = SpecContext { now, session_key: key.address(), account_epoch, names: names.clone() };
        let mut session = spec.resolve(&ctx)?;
        // What the owner is told: the window as it will be used, from Valet's clock.
        let functions = spec.functions()?;
        let summary = summary(&session, &functions, labels);
        let mut warnings = valet_core::spec::warnings(&session);
        warnings.extend(functions_not_in_known_abis(&session, &functions, labels));
        // The window ends its whole duration after Valet's clock, but starts no later than the
        // latest block: a bundler simulates at that block, and where it lags the wall clock (an
        // idle chain, or a grant within a block time) a window starting at the wall clock is "not
        // due" there. No block can come before the latest, so the earlier start grants nothing.
        if spec.valid_after.is_none() && chain_time < session.valid_after {
            session.valid_after = chain_time.max(1);
        }
        // EntryPoint v0.8 reads validAfter as exclusive (a block at exactly that second is "not
        // due"): the window is granted from a second earlier, so it opens when the owner read.
        if self.deployment.kind == AccountKind::Eip7702 && spec.valid_after.is_none() {
            session.valid_after = session.valid_after.saturating_sub(1).max(1);
        }
        let digest = eip712::grant_digest(&session, account.address, self.deployment.validator, self.chain_id)?;
        Ok(Proposal {
            account: *account,
            id: session.id()?,
            session,
            key,
            digest,
            summary,
            warnings,
            functions: spec.permissions.iter().map(|p| p.function.clone()).collect(),
            validator: self.deployment.validator,
            chain_id: self.chain_id,
        })
    }

    /// Builds and signs `calls` as one operation of `session` on `account`: reads the counters,
    /// pre-flights with the evaluator (refusing with the exact reason before anything is sent),
    /// picks each call's permission, deploys the account and enables the session when this is
    /// their first operation, estimates gas through the submitter and signs with the session key.
    /// Pre-flight judges the operation at every time it may be included, from [`Valet::now`] to
    /// [`INCLUSION_MARGIN`] later: a session that ends before then is refused as expired.
    pub async fn prepare(&self, account: &Account, session: &SessionHandle, calls: &[Call]) -> Result<Prepared, Error> {
        self.build(account, session, calls, true).await
    }

    /// Like [`Valet::prepare`] but without the pre-flight: the operation is built and signed even
    /// when the validator will refuse it, with fixed gas limits instead of an estimate (which
    /// would fail). For tests and demonstrations that the chain refuses what the evaluator does.
    pub async fn prepare_unchecked(
        &self,
        account: &Account,
        session: &SessionHandle,
        calls: &[Call],
    ) -> Result<UserOperation, Error> {
        Ok(self.build(account, session, calls, false).await?.op)
    }

    async fn build(
        &self,
        account: &Account,
        session: &SessionHandle,
        calls: &[Call],
        check: bool,
    ) -> Result<Prepared, Error> {
        let execution = execution_of(calls)?;
        let call_data = execution.encode();
        let counters = self.counters(account.address, &session.session).await?;
        let deployed = self.is_deployed(account.address).await?;
        let now = self.now().await?;
        let inclusion = now.saturating_add(INCLUSION_MARGIN);
        let enable = counters.state == SessionState::None;
        let paymaster = self.paymaster.as_deref();
        // First pass: the calls, with a nominal fee of 1 wei (no paymaster), so that a session
        // that may not pay fees at all is refused before estimating. Judged at the latest time
        // the operation is expected to be included; its window must also have begun now. With a
        // paymaster, the calls alone (free): the fee rule waits for the paymaster's fields.
        let request = Request {
            account: account.address,
            validator: self.deployment.validator,
            call_data: &call_data,
            indices: &[],
            claimed_time: now,
            enable,
            gas: if paymaster.is_some() { OpGas::default() } else { nominal_gas() },
            now: if check { inclusion } else { now },
        };
        let first = if check {
            judge_for_inclusion(&session.session, now, |claimed_time| {
                assign_permissions(&session.session, &counters, &Request { claimed_time, ..request.clone() })
            })
        } else {
            assign_permissions(&session.session, &counters, &request)
        };
        let indices = match first {
            Ok((indices, _)) => indices,
            Err(refusal) if check => return Err(refusal.into()),
            // Forced: the calls' permissions as a free operation would have them, or the failing
            // call sent under the permission it was refused by.
            Err(_) => match assign_permissions(
                &session.session,
                &counters,
                &Request { gas: OpGas::default(), ..request.clone() },
            ) {
                Ok((indices, _)) => indices,
                Err(refusal) => {
                    let mut indices = vec![0u8; execution.calls().len()];
                    if let Some((call, permission)) = refusal.call_permission() {
                        indices[call] = u8::try_from(permission).unwrap_or(u8::MAX);
                    }
                    indices
                }
            },
        };
        let nonce = self.nonce(account.address, session.nonce_key()).await?;
        let dummy = session.dummy_signature(now, &indices, enable)?;
        let mut op = self.draft(account, deployed, nonce, call_data.clone(), dummy).await?;
        self.carry_delegation(&mut op, session.authorization).await?;
        let (entry_point, chain_id) = (self.deployment.entry_point, self.chain_id);
        let judge = |op: &UserOperation| {
            let with_gas = Request { indices: &indices, gas: OpGas::of(&op.pack()), ..request.clone() };
            judge_for_inclusion(&session.session, now, |claimed_time| {
                Ok(((), evaluate(&session.session, &counters, &Request { claimed_time, ..with_gas.clone() })?))
            })
        };
        // Fields the paymaster says are final already: kept as they are, whatever the estimate.
        let mut final_fields = None;
        if let Some(paymaster) = paymaster {
            const METHOD: &str = "pm_getPaymasterStubData";
            let stub = paymaster.stub(&op, entry_point, chain_id).await.map_err(|e| attribute(paymaster, METHOD, e))?;
            stub.fields.apply(&mut op);
            final_fields = stub.is_final.then_some(stub.fields);
            // The fee rule, now that the paymaster is known and before estimating: a session
            // that lists other paymasters refuses this one here, with its address.
            if check {
                judge(&op)?;
            }
        }
        if check {
            // Paymaster gas limits the estimate leaves out stay the paymaster's own.
            let estimate = self.submitter.estimate(&op).await?;
            apply_estimate(&mut op, &estimate)?;
        } else {
            let limits = crate::GasLimits::default();
            op.verification_gas_limit = limits.verification;
            op.call_gas_limit = limits.call;
            op.pre_verification_gas = U256::from(limits.pre_verification);
        }
        if let Some(paymaster) = paymaster {
            // The final fields for the estimated operation, before the session key signs: the
            // userOpHash covers paymasterAndData.
            const METHOD: &str = "pm_getPaymasterData";
            let fields = match final_fields {
                Some(fields) => fields,
                None => {
                    paymaster.data(&op, entry_point, chain_id).await.map_err(|e| attribute(paymaster, METHOD, e))?
                }
            };
            fields.apply(&mut op);
            if op.paymaster_verification_gas_limit == 0 {
                return Err(Error::Paymaster {
                    paymaster: paymaster.name().to_string(),
                    method: METHOD.to_string(),
                    code: None,
                    message: "no paymasterVerificationGasLimit: neither the paymaster nor the gas estimate set one"
                        .into(),
                    data: None,
                });
            }
        }
        let mut after = counters.clone();
        if check {
            // Second pass: the operation as it will be signed, fees and paymaster included.
            let ((), verdict) = judge(&op)?;
            after = verdict.counters;
        }
        session.authorize(&mut op, now, &indices, enable, self.deployment.entry_point, self.chain_id)?;
        Ok(Prepared { op, indices, counters: after, deploys: !deployed, enables: enable })
    }

    /// Executes `calls` with `session` on `account` (see [`Valet::prepare`]) and waits for the
    /// receipt. A refusal before sending is [`Error::Preflight`] with the exact reason.
    ///
    /// ```no_run
    /// # use alloy::primitives::Address;
    /// # use valet_client::{Account, SessionHandle, Valet};
    /// # async fn example(
    /// #     valet: Valet, account: Account, session: SessionHandle, nft: Address,
    /// # ) -> Result<(), valet_client::Error> {
    /// use alloy::primitives::U256;
    /// use alloy::sol_types::SolCall;
    /// use valet_client::{Call, Error};
    ///
    /// alloy::sol! { function mint(address to, uint256 quantity); }
    ///
    /// let data = mintCall { to: account.address, quantity: U256::from(2) }.abi_encode();
    /// let call = Call { target: nft, value: U256::ZERO, data: data.into() };
    /// match valet.execute(&account, &session, &[call]).await {
    ///     Ok(done) => println!("{} gas, counters now {:?}", done.receipt.actual_gas_used, done.counters),
    ///     // Outside the session: nothing was sent, and the refusal says which rule and value.
    ///     Err(Error::Preflight(refusal)) => println!("refused: {refusal}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute(&self, account: &Account, session: &SessionHandle, calls: &[Call]) -> Result<Executed, Error> {
        let mut prepared = self.prepare(account, session, calls).await?;
        let receipt = match self.submit(std::slice::from_ref(&prepared.op)).await {
            // Deployed by someone else since it was built: build it again without initCode.
            Err(e) if e.already_deployed() => {
                prepared = self.prepare(account, session, calls).await?;
                self.submit(std::slice::from_ref(&prepared.op)).await?
            }
            other => other?,
        }
        .remove(0);
        Ok(Executed {
            receipt,
            indices: prepared.indices,
            counters: prepared.counters,
            deployed_account: prepared.deploys,
            enabled_session: prepared.enables,
        })
    }

    /// Submits signed operations together (one `handleOps` with direct submission) and waits
    /// for them; an operation whose calls reverted is [`Error::ExecutionReverted`].
    pub async fn submit(&self, ops: &[UserOperation]) -> Result<Vec<OpReceipt>, Error> {
        let receipts = self.submitter.submit(ops).await?;
        if let Some(failed) = receipts.iter().find(|r| !r.success) {
            return Err(Error::ExecutionReverted {
                user_op_hash: failed.user_op_hash,
                reason: failed.revert_reason.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "no data".into()),
            });
        }
        Ok(receipts)
    }

    /// Executes `calls` as the owner (the account's own ECDSA validation, nonce key 0), deploying
    /// the account first if needed. The owner signs the EIP-191 hash of the userOpHash.
    pub async fn owner_execute(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
        calls: &[Call],
    ) -> Result<OpReceipt, Error> {
        check_owner(account, owner)?;
        self.owner_op(account, owner, execution_of(calls)?.encode()).await
    }

    /// An owner operation with `call_data`: deploys (or delegates and activates) the account
    /// first if needed; the owner signs the EIP-191 hash of the userOpHash (smart accounts) or
    /// the userOpHash itself (EIP-7702 accounts, whose EntryPoint v0.8 hash is EIP-712 already),
    /// and the delegation when the EOA does not delegate to Valet yet.
    async fn owner_op(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
        call_data: Bytes,
    ) -> Result<OpReceipt, Error> {
        // An EIP-7702 account's owner operations never activate in their initCode: the owner's
        // signature needs no module ([`Valet::upgrade`] activates in the calls).
        let deployed = self.deployment.kind == AccountKind::Eip7702 || self.is_deployed(account.address).await?;
        let nonce = self.nonce(account.address, U256::ZERO).await?;
        let dummy = DUMMY_ECDSA_SIGNATURE.to_vec().into();
        let mut op = self.draft(account, deployed, nonce, call_data, dummy).await?;
        if self.deployment.kind == AccountKind::Eip7702 && !self.is_delegated(account.address).await? {
            let auth = self.sign_delegation(account, owner).await?;
            self.carry_delegation(&mut op, auth).await?;
        }
        // Sponsored like session operations when this client has a paymaster: an account that
        // holds no ETH must still be able to revoke.
        let (entry_point, chain_id) = (self.deployment.entry_point, self.chain_id);
        let mut final_fields = None;
        if let Some(paymaster) = self.paymaster.as_deref() {
            let stub = paymaster
                .stub(&op, entry_point, chain_id)
                .await
                .map_err(|e| attribute(paymaster, "pm_getPaymasterStubData", e))?;
            stub.fields.apply(&mut op);
            final_fields = stub.is_final.then_some(stub.fields);
        }
        let estimate = self.submitter.estimate(&op).await?;
        apply_estimate(&mut op, &estimate)?;
        if let Some(paymaster) = self.paymaster.as_deref() {
            let fields = match final_fields {
                Some(fields) => fields,
                None => paymaster
                    .data(&op, entry_point, chain_id)
                    .await
                    .map_err(|e| attribute(paymaster, "pm_getPaymasterData", e))?,
            };
            fields.apply(&mut op);
        }
        let hash = op.hash(self.deployment.entry_point, self.chain_id);
        // Any alloy signer: a local key, a keystore, a hardware wallet, a KMS.
        let signature = match self.deployment.kind {
            AccountKind::Smart => owner.sign_message(hash.as_slice()).await,
            AccountKind::Eip7702 => owner.sign_hash(&hash).await,
        };
        op.signature = signature.map_err(Error::Signing)?.as_bytes().into();
        Ok(self.submit(&[op]).await?.remove(0))
    }

    /// Revokes session `id` on `account` with an owner-signed operation (at once, whether or not
    /// the session was ever used). Revoking it again is refused rather than paid for.
    pub async fn revoke(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
        id: B256,
    ) -> Result<OpReceipt, Error> {
        check_owner(account, owner)?;
        let validator = SessionKeyValidator::new(self.deployment.validator, &self.provider);
        if validator.isRevoked(account.address, id).call().await.map_err(rpc)? {
            return Err(Error::AlreadyRevoked { id });
        }
        let data = SessionKeyValidator::revokeSessionCall { id }.abi_encode();
        let call = Call { target: self.deployment.validator, value: U256::ZERO, data: data.into() };
        self.owner_execute(account, owner, &[call]).await
    }

    /// Revokes every session of `account` and voids every grant signed before, with an
    /// owner-signed operation: the account moves to a new epoch that no earlier grant can name.
    /// Nothing a session key holder does first can make it fail.
    pub async fn revoke_all(
        &self,
        account: &Account,
        owner: &(dyn alloy::signers::Signer + Send + Sync),
    ) -> Result<OpReceipt, Error> {
        check_owner(account, owner)?;
        let data = SessionKeyValidator::revokeAllSessionsCall {}.abi_encode();
        let call = Call { target: self.deployment.validator, value: U256::ZERO, data: data.into() };
        self.owner_execute(account, owner, &[call]).await
    }

    /// The revocation of session `id` on `account` for the owner to sign, with any signer and
    /// offline: its EIP-712 digest (signed as a raw hash) or its typed data (a wallet's
    /// `eth_signTypedData_v4`). Anyone may then submit it ([`Valet::revoke_with_signature`]): the
    /// owner needs no ETH and sends nothing.
    pub fn revocation(&self, account: Address, id: B256) -> Revocation {
        let (validator, chain_id) = (self.deployment.validator, self.chain_id);
        Revocation {
            account,
            of: Revoked::Session(id),
            digest: eip712::revoke_session_digest(account, id, validator, chain_id),
            typed_data: eip712::revoke_session_typed_data(account, id, validator, chain_id),
        }
    }

    /// The revocation of every session of `account` (and of every grant signed before it) for
    /// the owner to sign, as [`Valet::revocation`]. It names the account's current epoch, so it
    /// works once: submitted, it moves the epoch, and nobody can replay it.
    pub async fn revocation_of_all(&self, account: Address) -> Result<Revocation, Error> {
        let epoch = self.account_epoch(account).await?;
        let (validator, chain_id) = (self.deployment.validator, self.chain_id);
        Ok(Revocation {
            account,
            of: Revoked::All { epoch },
            digest: eip712::revoke_all_digest(account, epoch, validator, chain_id),
            typed_data: eip712::revoke_all_typed_data(account, epoch, validator, chain_id),
        })
    }

    /// Submits `revocation` with the owner's `signature` over its digest, from `relayer` (any
    /// funded key: the app's, a service's). It is simulated first, so a signature that is not the
    /// owner's costs nothing: [`Error::TransactionWouldRevert`] naming `InvalidOwnerSignature`. A
    /// session revoked already is [`Error::AlreadyRevoked`]; a revoke-all whose epoch has moved
    /// since it was signed (someone revoked everything meanwhile) is [`Error::Config`].
    pub async fn revoke_with_signature(
        &self,
        relayer: &crate::Relayer,
        revocation: &Revocation,
        signature: &[u8],
    ) -> Result<alloy::rpc::types::TransactionReceipt, Error> {
        let validator = SessionKeyValidator::new(self.deployment.validator, &self.provider);
        let account = revocation.account;
        let signature = Bytes::copy_from_slice(signature);
        let call = match revocation.of {
            Revoked::Session(id) => {
                if validator.isRevoked(account, id).call().await.map_err(rpc)? {
                    return Err(Error::AlreadyRevoked { id });
                }
                SessionKeyValidator::revokeSessionWithSignatureCall { account, id, signature }.abi_encode()
            }
            Revoked::All { epoch } => {
                let now = self.account_epoch(account).await?;
                if now != epoch {
                    return Err(Error::Config(format!(
                        "account {account} moved from epoch {epoch} to {now} since this revocation was signed: every \
                         session it would revoke is revoked already"
                    )));
                }
                SessionKeyValidator::revokeAllSessionsWithSignatureCall { account, signature }.abi_encode()
            }
        };
        let tx = alloy::rpc::types::TransactionRequest::default().to(self.deployment.validator).input(call.into());
        relayer.send(tx).await
    }

    /// The account's epoch (grants must carry it; it moves on every revoke-all).
    pub async fn account_epoch(&self, account: Address) -> Result<u64, Error> {
        let validator = SessionKeyValidator::new(self.deployment.validator, &self.provider);
        validator.accountEpoch(account).call().await.map_err(rpc)
    }

    /// What `session` has left on `account`, and whether it can be used now (and if not, why and
    /// what to do).
    pub async fn status(&self, account: Address, session: &Session) -> Result<SessionStatus, Error> {
        let chain = self.chain_state(account, session).await?;
        let now = self.now().await?;
        Ok(status_of(session, session.id()?, &chain, now))
    }
}

/// How long an operation may wait, once built, before a block includes it (valet-core's, shared
/// with the WebAssembly build).
pub use valet_core::evaluator::INCLUSION_MARGIN;

/// Warnings for permissions naming a function that their target — a contract whose ABI this
/// client knows, by the name the labels give its address — does not have and cannot take (no
/// fallback): every call the permission allows would revert.
fn functions_not_in_known_abis(
    session: &Session,
    functions: &[Option<valet_core::spec::Function>],
    labels: &Labels,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (permission, function) in session.permissions.iter().zip(functions) {
        let Some(function) = function else { continue };
        let Some(name) = labels.names.get(&permission.target) else { continue };
        let Some(abi) = known_abi(name) else { continue };
        let has = abi.functions().any(|f| f.selector() == permission.selector);
        if !has && abi.fallback.is_none() {
            warnings.push(format!(
                "{name} has no function {}: the session would allow a call that always reverts",
                function.signature()
            ));
        }
    }
    warnings
}

/// The ABI of the contract this client knows by `name` (Valet's validator; the demo contracts
/// with the `demo` feature).
fn known_abi(name: &str) -> Option<&'static alloy::json_abi::JsonAbi> {
    static ABIS: std::sync::OnceLock<Vec<(&'static str, alloy::json_abi::JsonAbi)>> = std::sync::OnceLock::new();
    let abis = ABIS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut abis = vec![("SessionKeyValidator", SessionKeyValidator::abi::contract())];
        #[cfg(feature = "demo")]
        abis.extend([
            ("ValetNFT", crate::contracts::demo::ValetNFT::abi::contract()),
            ("ValetToken", crate::contracts::demo::ValetToken::abi::contract()),
            ("ValetDAO", crate::contracts::demo::ValetDAO::abi::contract()),
        ]);
        abis
    });
    abis.iter().find(|(known, _)| *known == name).map(|(_, abi)| abi)
}

/// One call as a single execution, several as a batch.
/// The code of an EOA that delegates to `implementation` (EIP-7702's delegation designator).
pub fn delegation_code(implementation: Address) -> [u8; 23] {
    let mut code = [0u8; 23];
    code[..3].copy_from_slice(&[0xef, 0x01, 0x00]);
    code[3..].copy_from_slice(implementation.as_slice());
    code
}

/// A signed EIP-7702 authorization as an operation carries it (bundlers' `eip7702Auth`).
pub fn eip7702_auth(signed: SignedAuthorization) -> Eip7702Auth {
    use valet_core::user_operation::Quantity;
    Eip7702Auth {
        chain_id: Quantity(signed.chain_id),
        address: signed.address,
        nonce: Quantity(U256::from(signed.nonce)),
        y_parity: Quantity(U256::from(signed.y_parity())),
        r: B256::from(signed.r()),
        s: B256::from(signed.s()),
    }
}

fn execution_of(calls: &[Call]) -> Result<Execution, Error> {
    match calls {
        [] => Err(Error::Config("no calls to execute".into())),
        [one] => Ok(Execution::Single(one.clone())),
        many => Ok(Execution::Batch(many.to_vec())),
    }
}

fn check_owner(account: &Account, owner: &(dyn alloy::signers::Signer + Send + Sync)) -> Result<(), Error> {
    if owner.address() != account.owner {
        return Err(Error::NotOwner { key: owner.address(), owner: account.owner, account: account.address });
    }
    Ok(())
}

/// Gas fields that may cost the account 1 wei: enough for the evaluator to say whether a session
/// may spend any of the account's ETH on fees, before the real fields are known.
fn nominal_gas() -> OpGas {
    OpGas { pre_verification_gas: U256::from(1), gas_fees: B256::with_last_byte(1), ..OpGas::default() }
}

/// A session's status from where the chain says it stands, at `now`.
pub fn status_of(session: &Session, id: B256, chain: &ChainState, now: u64) -> SessionStatus {
    let counters = &chain.counters;
    let reason = if chain.state == Standing::NotInstalled {
        Some("the session key validator is not installed on this account; no session can act for it".to_string())
    } else if counters.state == SessionState::Revoked {
        Some(format!("session {id} was revoked; grant a new one"))
    } else if chain.state == Standing::Voided {
        Some("all sessions of the account were revoked after this one was granted; grant a new one".to_string())
    } else if now > session.valid_until {
        Some(format!(
            "session expired at {}; grant a new one",
            valet_core::spec::utc_seconds(session.valid_until.saturating_add(1))
        ))
    } else if now.saturating_add(INCLUSION_MARGIN) > session.valid_until {
        Some(format!(
            "session ends at {}, sooner than an operation can surely be included ({INCLUSION_MARGIN} s); grant a new one",
            valet_core::spec::utc_seconds(session.valid_until.saturating_add(1))
        ))
    } else if now < session.valid_after {
        Some(format!("session starts at {}; wait until then", valet_core::spec::utc(session.valid_after)))
    } else if session.max_uses != 0 && counters.session_uses >= session.max_uses {
        Some(format!("session has used all {} of its operations; grant a new one", session.max_uses))
    } else {
        None
    };
    let permissions = session
        .permissions
        .iter()
        .enumerate()
        .map(|(i, p)| PermissionStatus {
            target: p.target,
            selector: p.selector,
            uses: (i < MAX_COUNTED_PERMISSIONS && p.max_uses != 0).then(|| counters.permission_uses[i]),
            max_uses: u32::from(p.max_uses),
        })
        .collect();
    let limits = session
        .limits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (spent, period) = counters.limits.get(i).copied().unwrap_or_default();
            let current_period = now.saturating_sub(session.valid_after).checked_div(l.period).unwrap_or(0);
            let current_spent = if period == current_period { spent } else { 0 };
            LimitStatus {
                kind: match l.kind {
                    LimitKind::Native => "native",
                    LimitKind::Erc20 => "erc20",
                    LimitKind::Fees => "fees",
                },
                token: l.token,
                cap: l.amount,
                spent,
                left: l.amount.saturating_sub(current_spent),
                period_seconds: l.period,
                period,
                current_period,
            }
        })
        .collect();
    SessionStatus {
        id,
        state: chain.state,
        usable: reason.is_none(),
        reason,
        now,
        valid_after: session.valid_after,
        valid_until: session.valid_until,
        uses: counters.session_uses,
        max_uses: session.max_uses,
        permissions,
        limits,
        fees: FeeStatus {
            mode: match session.fee_budget {
                0 => "sponsored",
                valet_core::session::MAX_FEE_BUDGET if session.limits.iter().any(|l| l.kind == LimitKind::Fees) => {
                    "per_period"
                }
                _ => "budget",
            },
            budget: session.fee_budget,
            spent: counters.fees_spent,
            left: session.fee_budget.saturating_sub(counters.fees_spent),
            paymasters: session.paymasters.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valet_core::session::MAX_FEE_BUDGET;
    use valet_core::{Limit, Permission, Refusal};

    /// Amounts above `u64::MAX` (a 2^80 fee budget, 100 tokens of 18 decimals) reach JSON intact:
    /// as numbers they made `serde_json::json!` panic in the service.
    #[test]
    fn large_amounts_serialise_as_decimal_strings() {
        let session = Session {
            session_key: Address::repeat_byte(1),
            valid_after: 1,
            valid_until: 100,
            epoch: 0,
            salt: 0,
            max_uses: 0,
            fee_budget: MAX_FEE_BUDGET,
            paymasters: vec![],
            limits: vec![
                Limit {
                    kind: LimitKind::Erc20,
                    token: Address::repeat_byte(2),
                    amount: 100 * 10u128.pow(18),
                    period: 0,
                },
                Limit { kind: LimitKind::Fees, token: Address::ZERO, amount: 10u128.pow(16), period: 86_400 },
            ],
            permissions: vec![Permission {
                target: Address::repeat_byte(2),
                selector: FixedBytes::new([0xa9, 0x05, 0x9c, 0xbb]),
                value_limit: 0,
                max_uses: 0,
                rules: vec![],
            }],
        };
        let chain =
            ChainState { counters: Counters { installed: true, ..Counters::default() }, state: Standing::NotEnabled };
        let status = status_of(&session, B256::ZERO, &chain, 50);
        let value = serde_json::to_value(&status).expect("serialises");
        assert_eq!(value["fees"]["budget"], "1208925819614629174706175");
        assert_eq!(value["fees"]["mode"], "per_period");
        assert_eq!(value["limits"][0]["cap"], "100000000000000000000");
        assert_eq!(value["limits"][1]["kind"], "fees");
    }

    const S: u64 = 1_800_000_000;

    /// A session from `S` for `length` seconds that may send up to 1 wei per minute to one payee.
    fn per_minute(length: u64) -> Session {
        Session {
            session_key: Address::repeat_byte(1),
            valid_after: S,
            valid_until: S + length - 1,
            epoch: 0,
            salt: 0,
            max_uses: 0,
            fee_budget: 0,
            paymasters: vec![],
            limits: vec![Limit { kind: LimitKind::Native, token: Address::ZERO, amount: 1, period: 60 }],
            permissions: vec![Permission {
                target: Address::repeat_byte(2),
                selector: FixedBytes::ZERO,
                value_limit: 1,
                max_uses: 0,
                rules: vec![],
            }],
        }
    }

    /// Pre-flight of sending `value` wei at `now` with `session`: the window it would be
    /// accepted in, or the refusal.
    fn judged(session: &Session, value: u64, now: u64) -> Result<(u64, u64), Refusal> {
        let call = Call { target: Address::repeat_byte(2), value: U256::from(value), data: Bytes::new() };
        let call_data = Execution::Single(call).encode();
        let counters =
            Counters { state: SessionState::Enabled, installed: true, limits: vec![(0, 0)], ..Counters::default() };
        let request = Request {
            account: Address::repeat_byte(3),
            validator: Address::repeat_byte(4),
            call_data: &call_data,
            indices: &[0],
            claimed_time: now,
            enable: false,
            gas: OpGas::default(),
            now: now + INCLUSION_MARGIN,
        };
        let ((), verdict) = judge_for_inclusion(session, now, |claimed_time| {
            Ok(((), evaluate(session, &counters, &Request { claimed_time, ..request.clone() })?))
        })?;
        Ok((verdict.valid_after, verdict.valid_until))
    }

    /// An operation is accepted only if it is valid at every time a block may include it, from
    /// now to [`INCLUSION_MARGIN`] later: not when the session ends or an allowance period turns
    /// meanwhile, nor before the session starts.
    #[test]
    fn pre_flight_covers_every_time_of_inclusion() {
        let session = per_minute(3_600);
        // Well inside a period: accepted, in the period current now and at inclusion.
        assert_eq!(judged(&session, 1, S + 10), Ok((S, S + 59)));
        assert_eq!(judged(&session, 1, S + 60 + 47), Ok((S + 60, S + 119)));
        // The period turns within the margin: refused as not due until the next one begins.
        assert_eq!(
            judged(&session, 1, S + 60 + 48),
            Err(Refusal::OutsideWindow { valid_after: S + 120, valid_until: S + 179, now: S + 108 })
        );
        // An operation spending nothing claims no period.
        assert_eq!(judged(&session, 0, S + 108), Ok((S, S + 3_599)));
        // The session ends within the margin: refused as expired, at the time of inclusion.
        assert_eq!(
            judged(&session, 0, S + 3_590),
            Err(Refusal::OutsideWindow { valid_after: S, valid_until: S + 3_599, now: S + 3_602 })
        );
        let short = per_minute(70);
        assert_eq!(
            judged(&short, 1, S + 60),
            Err(Refusal::OutsideWindow { valid_after: S + 60, valid_until: S + 69, now: S + 72 })
        );
        // Not started yet, though it will have by the end of the margin.
        assert_eq!(
            judged(&session, 0, S - 5),
            Err(Refusal::OutsideWindow { valid_after: S, valid_until: S + 3_599, now: S - 5 })
        );
    }
}
