//! Valet's contracts at the same addresses on every EVM chain.
//!
//! Each contract is created through the deterministic deployment proxy
//! ([`DETERMINISTIC_DEPLOYER`], at the same address on every chain that has it, EntryPoint v0.7
//! came the same way) with Valet's [`SALT`], and no constructor argument depends on the chain or
//! on who deploys: the validator takes none, the factory only the validator's address, and the
//! account implementation is created by the factory's constructor. So an address is a function of
//! the checked-in artifacts alone: [`canonical`] computes them offline, and [`deploy`] puts the
//! contracts there on any chain, skipping each one whose code is already there and refusing one
//! whose code differs.
//!
//! Comparing code: a contract's runtime code embeds its immutables, which its constructor sets
//! and which may depend on the chain (the validator's EIP-712 domain caches the chain id). Code
//! at a canonical address is Valet's when it equals the artifact's runtime code everywhere except
//! at the immutables' offsets (`contracts/artifacts/immutables.json`, exported with the
//! artifacts).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use alloy::primitives::{Address, B256, Bytes, U256, address, b256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolValue;
use serde::Serialize;

use crate::Error;
use crate::contracts::account_7702::ValetAccount7702;
use crate::contracts::demo::{ValetDAO, ValetNFT, ValetToken};
use crate::contracts::{SessionKeyValidator, ValetAccountFactory, entry_point, entry_point_v08};

/// The deterministic deployment proxy (Arachnid's), at this address on every chain that has it:
/// called with `salt ‖ initCode`, it CREATE2s the contract and returns its address.
pub const DETERMINISTIC_DEPLOYER: Address = address!("0x4e59b44847b379578588920cA78FbF26c0B4956C");

/// The proxy's runtime code: code at [`DETERMINISTIC_DEPLOYER`] must be exactly this, or nothing
/// created through it is where we compute.
const DEPLOYER_CODE: &[u8] = &alloy::hex!(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3"
);

/// Valet's CREATE2 salt: `keccak256("valet.deploy.v1")`.
pub const SALT: B256 = b256!("0xabba23bd64177f3e0dd3b8c2361e4563513101b8bc6d2e8df0859daf8233bf01");

/// EntryPoint v0.7's own CREATE2 salt (its published deployment).
const ENTRY_POINT_SALT: B256 = b256!("0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3");

/// EntryPoint v0.8's own CREATE2 salt (its published deployment).
const ENTRY_POINT_V08_SALT: B256 = b256!("0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9");

/// The ERC-7562 minimum unstake delay most bundlers require of a staked entity: one day.
pub const DEFAULT_UNSTAKE_DELAY: u32 = 86_400;

/// The default factory stake: 1 ETH (the ERC-7562 reference `MIN_STAKE_VALUE` on Ethereum; check
/// what your bundler requires on other chains).
pub const DEFAULT_STAKE: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// Where Valet's contracts are on every chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Canonical {
    /// EntryPoint v0.7 (its own canonical address).
    pub entry_point: Address,
    /// The SessionKeyValidator.
    pub validator: Address,
    /// The ValetAccountFactory.
    pub factory: Address,
    /// The ValetAccount implementation every account clones (created by the factory).
    pub account_implementation: Address,
}

/// Where the demo contracts are on every chain (`valet deploy --demo`; the devnet has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoContracts {
    /// The demo ERC-721.
    pub nft: Address,
    /// The demo ERC-20.
    pub token: Address,
    /// The demo DAO.
    pub dao: Address,
}

/// Where the EIP-7702 contracts are on every chain ([`deploy_eip7702`] puts them there; the
/// devnet has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Eip7702Contracts {
    /// EntryPoint v0.8 (its own canonical address, [`valet_core::ENTRY_POINT_V08`]).
    pub entry_point_v08: Address,
    /// The ValetAccount7702 implementation EOAs delegate to (its constructor takes the canonical
    /// validator, so its address follows from the artifacts alone, as the others').
    pub account_7702: Address,
}

/// One contract to create through the proxy.
struct Item {
    name: &'static str,
    artifact: &'static str,
    init_code: Vec<u8>,
    runtime: &'static [u8],
}

impl Item {
    fn address(&self) -> Address {
        create2_address(&self.init_code)
    }
}

/// The address the proxy gives `init_code` with [`SALT`].
pub fn create2_address(init_code: &[u8]) -> Address {
    DETERMINISTIC_DEPLOYER.create2(SALT, keccak256(init_code))
}

fn validator_item() -> Item {
    Item {
        name: "validator",
        artifact: "SessionKeyValidator",
        init_code: SessionKeyValidator::BYTECODE.to_vec(),
        runtime: &SessionKeyValidator::DEPLOYED_BYTECODE,
    }
}

fn factory_item(validator: Address) -> Item {
    let mut init_code = ValetAccountFactory::BYTECODE.to_vec();
    init_code.extend_from_slice(&validator.abi_encode());
    Item {
        name: "factory",
        artifact: "ValetAccountFactory",
        init_code,
        runtime: &ValetAccountFactory::DEPLOYED_BYTECODE,
    }
}

fn account_7702_item(validator: Address) -> Item {
    let mut init_code = ValetAccount7702::BYTECODE.to_vec();
    init_code.extend_from_slice(&validator.abi_encode());
    Item {
        name: "account_7702",
        artifact: "ValetAccount7702",
        init_code,
        runtime: &ValetAccount7702::DEPLOYED_BYTECODE,
    }
}

fn demo_items() -> [Item; 3] {
    [
        Item {
            name: "nft",
            artifact: "ValetNFT",
            init_code: ValetNFT::BYTECODE.to_vec(),
            runtime: &ValetNFT::DEPLOYED_BYTECODE,
        },
        Item {
            name: "token",
            artifact: "ValetToken",
            init_code: ValetToken::BYTECODE.to_vec(),
            runtime: &ValetToken::DEPLOYED_BYTECODE,
        },
        Item {
            name: "dao",
            artifact: "ValetDAO",
            init_code: ValetDAO::BYTECODE.to_vec(),
            runtime: &ValetDAO::DEPLOYED_BYTECODE,
        },
    ]
}

static CANONICAL: LazyLock<Canonical> = LazyLock::new(|| {
    let validator = validator_item().address();
    let factory = factory_item(validator).address();
    Canonical {
        entry_point: valet_core::ENTRY_POINT_V07,
        validator,
        factory,
        // A contract's first CREATE has nonce 1 (EIP-161).
        account_implementation: factory.create(1),
    }
});

/// Valet's addresses on every chain, computed from the artifacts this crate was built with.
///
/// ```
/// use valet_client::Deployment;
/// use valet_client::core::ENTRY_POINT_V07;
///
/// let valet = valet_client::deploy::canonical(); // offline: no chain needed
/// assert_eq!(valet.entry_point, ENTRY_POINT_V07);
/// println!("validator {}, factory {}", valet.validator, valet.factory);
/// // What `Valet::new` is given on any chain `deploy` ran on (and `Valet::canonical` uses).
/// assert_eq!(Deployment::canonical().validator, valet.validator);
/// ```
pub fn canonical() -> Canonical {
    *CANONICAL
}

/// The EIP-7702 contracts' addresses on every chain.
pub fn eip7702() -> Eip7702Contracts {
    Eip7702Contracts {
        entry_point_v08: valet_core::ENTRY_POINT_V08,
        account_7702: account_7702_item(canonical().validator).address(),
    }
}

/// The demo contracts' addresses on every chain.
pub fn demo() -> DemoContracts {
    let [nft, token, dao] = demo_items().map(|i| i.address());
    DemoContracts { nft, token, dao }
}

impl crate::Deployment {
    /// Valet's canonical deployment: the same on every chain ([`canonical`]).
    pub fn canonical() -> Self {
        let c = canonical();
        Self { entry_point: c.entry_point, validator: c.validator, factory: c.factory, kind: crate::AccountKind::Smart }
    }

    /// Valet's canonical deployment for EIP-7702 accounts: EntryPoint v0.8, the canonical
    /// validator, and the ValetAccount7702 implementation EOAs delegate to ([`eip7702`]).
    pub fn eip7702() -> Self {
        let e = eip7702();
        Self {
            entry_point: e.entry_point_v08,
            validator: canonical().validator,
            factory: e.account_7702,
            kind: crate::AccountKind::Eip7702,
        }
    }
}

impl Default for crate::Deployment {
    /// [`crate::Deployment::canonical`].
    fn default() -> Self {
        Self::canonical()
    }
}

/// What [`deploy`] is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployOptions {
    /// Also the demo contracts (NFT, token, DAO).
    pub demo: bool,
    /// The factory's stake in the EntryPoint should be at least this (wei); 0: do not stake.
    pub stake: U256,
    /// And its unstake delay at least this (seconds).
    pub unstake_delay: u32,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self { demo: false, stake: DEFAULT_STAKE, unstake_delay: DEFAULT_UNSTAKE_DELAY }
    }
}

/// What [`deploy`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployReport {
    /// The chain.
    pub chain_id: u64,
    /// EntryPoint v0.7.
    pub entry_point: Address,
    /// The SessionKeyValidator.
    pub validator: Address,
    /// The ValetAccountFactory.
    pub factory: Address,
    /// The account implementation.
    pub account_implementation: Address,
    /// The demo contracts, when asked for.
    pub demo: Option<DemoContracts>,
    /// What this run created (`entry_point`, `validator`, `factory`, `nft`, `token`, `dao`), in
    /// order; empty when everything was there already.
    pub deployed: Vec<&'static str>,
    /// What was there already with the expected code.
    pub verified: Vec<&'static str>,
    /// The factory's stake in the EntryPoint after this run (wei; a decimal string in JSON).
    #[serde(serialize_with = "decimal")]
    pub factory_stake_wei: U256,
    /// Its unstake delay (seconds).
    pub factory_unstake_delay_sec: u32,
    /// Who manages the factory's stake (may unlock and withdraw it); zero when unstaked.
    pub factory_stake_manager: Address,
    /// Whether this run added stake.
    pub staked: bool,
    /// Transactions this run sent.
    pub transactions: Vec<B256>,
}

fn decimal<S: serde::Serializer>(value: &U256, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::rpc(e)
}

/// The runtime code of `artifact` with its immutables' bytes zeroed.
fn masked(artifact: &str, code: &[u8]) -> Vec<u8> {
    static IMMUTABLES: LazyLock<BTreeMap<String, Vec<(usize, usize)>>> = LazyLock::new(|| {
        serde_json::from_str(include_str!("../../../contracts/artifacts/immutables.json"))
            .expect("contracts/artifacts/immutables.json is valid (checked by make test-artifacts)")
    });
    let mut code = code.to_vec();
    for &(start, length) in IMMUTABLES.get(artifact).map(Vec::as_slice).unwrap_or_default() {
        if let Some(bytes) = code.get_mut(start..start + length) {
            bytes.fill(0);
        }
    }
    code
}

/// Whether `code` (found on chain) is `artifact`'s runtime code, immutables aside.
fn same_code(artifact: &str, expected: &[u8], code: &[u8]) -> bool {
    code.len() == expected.len() && masked(artifact, code) == masked(artifact, expected)
}

/// Deploys Valet (and the demo contracts if asked) at the canonical addresses through the
/// deterministic deployment proxy, with `provider`'s wallet paying, and stakes the factory.
/// Idempotent: a contract already there with the expected code is skipped, a stake already as
/// large and as long is left alone. Refused, before sending anything: a chain without the proxy
/// (or with other code at its address), and any canonical address holding other code.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use alloy::network::EthereumWallet;
/// use alloy::providers::{Provider, ProviderBuilder};
/// use alloy::signers::local::PrivateKeySigner;
/// use valet_client::deploy::{DeployOptions, canonical, deploy};
///
/// // Whoever pays: any funded key (the addresses do not depend on it).
/// let key: PrivateKeySigner = std::env::var("DEPLOYER_KEY")?.parse()?;
/// let url = "http://127.0.0.1:8545".parse()?;
/// let provider = ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url).erased();
/// let report = deploy(&provider, DeployOptions::default()).await?; // run it again: nothing to do
/// println!("chain {}: deployed {:?}, found {:?}", report.chain_id, report.deployed, report.verified);
/// assert_eq!((report.validator, report.factory), (canonical().validator, canonical().factory));
/// # Ok(())
/// # }
/// ```
pub async fn deploy(provider: &DynProvider, options: DeployOptions) -> Result<DeployReport, Error> {
    let chain_id = provider.get_chain_id().await.map_err(rpc)?;
    let deployer_code = provider.get_code_at(DETERMINISTIC_DEPLOYER).await.map_err(rpc)?;
    if deployer_code.is_empty() {
        return Err(Error::Deploy(format!(
            "chain {chain_id} has no deterministic deployment proxy at {DETERMINISTIC_DEPLOYER}: deploy it first with \
             its presigned transaction (github.com/Arachnid/deterministic-deployment-proxy), then run this again"
        )));
    }
    if deployer_code[..] != *DEPLOYER_CODE {
        return Err(Error::Deploy(format!(
            "the code at {DETERMINISTIC_DEPLOYER} on chain {chain_id} is not the deterministic deployment proxy \
             (code hash {}): Valet's addresses would not be the canonical ones",
            keccak256(&deployer_code)
        )));
    }
    let canonical = canonical();
    let validator = validator_item();
    let factory = factory_item(validator.address());
    let mut items = vec![validator, factory];
    if options.demo {
        items.extend(demo_items());
    }

    // Check everything first, so that a refusal sends nothing.
    let mut verified = Vec::new();
    let mut missing = Vec::new();
    let entry_point_code = provider.get_code_at(canonical.entry_point).await.map_err(rpc)?;
    if entry_point_code.is_empty() {
        missing.push(None);
    } else {
        verify_entry_point(chain_id, &entry_point_code)?;
        verified.push("entry_point");
    }
    for item in &items {
        let address = item.address();
        let code = provider.get_code_at(address).await.map_err(rpc)?;
        if code.is_empty() {
            missing.push(Some(item));
        } else if same_code(item.artifact, item.runtime, &code) {
            verified.push(item.name);
        } else {
            return Err(Error::Deploy(format!(
                "{address} on chain {chain_id} holds code that is not Valet's {} (code hash {}, {} bytes; Valet's is {} \
                 bytes): refusing to use it",
                item.artifact,
                keccak256(&code),
                code.len(),
                item.runtime.len()
            )));
        }
    }

    let mut deployed = Vec::new();
    let mut transactions = Vec::new();
    for item in missing {
        let (name, salt, init_code, address) = match item {
            None => ("entry_point", ENTRY_POINT_SALT, &entry_point::EntryPoint::BYTECODE[..], canonical.entry_point),
            Some(item) => (item.name, SALT, &item.init_code[..], item.address()),
        };
        transactions.push(create2(provider, name, salt, init_code, address).await?);
        deployed.push(name);
    }

    let entry_point = entry_point::EntryPoint::new(canonical.entry_point, provider);
    let factory = ValetAccountFactory::new(canonical.factory, provider);
    let info = entry_point.getDepositInfo(canonical.factory).call().await.map_err(rpc)?;
    let mut stake = U256::from(info.stake);
    let mut delay = info.unstakeDelaySec;
    let mut staked = false;
    if options.stake > U256::ZERO && (stake < options.stake || delay < options.unstake_delay || !info.staked) {
        // A stake being withdrawn (unlocked) cannot be added to: say so rather than fail.
        if info.withdrawTime != 0 {
            return Err(Error::Deploy(format!(
                "the factory's stake on chain {chain_id} is unlocked (withdrawable at {}): its stake manager must withdraw \
                 it before it can be staked again",
                info.withdrawTime
            )));
        }
        let add = options.stake.saturating_sub(stake);
        let receipt = factory
            .addStake(options.unstake_delay.max(delay))
            .value(add)
            .send()
            .await
            .map_err(rpc)?
            .get_receipt()
            .await
            .map_err(rpc)?;
        if !receipt.status() {
            return Err(Error::Deploy(format!("staking the factory failed in {}", receipt.transaction_hash)));
        }
        transactions.push(receipt.transaction_hash);
        let info = entry_point.getDepositInfo(canonical.factory).call().await.map_err(rpc)?;
        (stake, delay, staked) = (U256::from(info.stake), info.unstakeDelaySec, true);
    }
    let manager = factory.stakeManager().call().await.map_err(rpc)?;
    Ok(DeployReport {
        chain_id,
        entry_point: canonical.entry_point,
        validator: canonical.validator,
        factory: canonical.factory,
        account_implementation: canonical.account_implementation,
        demo: options.demo.then(demo),
        deployed,
        verified,
        factory_stake_wei: stake,
        factory_unstake_delay_sec: delay,
        factory_stake_manager: manager,
        staked,
        transactions,
    })
}

/// What [`deploy_eip7702`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eip7702Report {
    /// The chain.
    pub chain_id: u64,
    /// Where the contracts are.
    pub contracts: Eip7702Contracts,
    /// What this run created (`entry_point_v08`, `account_7702`), in order.
    pub deployed: Vec<&'static str>,
    /// What was there already with the expected code.
    pub verified: Vec<&'static str>,
    /// Transactions this run sent.
    pub transactions: Vec<B256>,
}

/// Deploys what EIP-7702 accounts need at their canonical addresses ([`eip7702`]) through the
/// deterministic deployment proxy: EntryPoint v0.8 from its published bytecode and salt, and the
/// ValetAccount7702 implementation for the canonical validator (which [`deploy`] puts there;
/// nothing checks it is there, as the implementation only keeps its address). Idempotent and
/// refusing as [`deploy`]: what is there with the expected code is skipped, other code at either
/// address is refused before anything is sent.
pub async fn deploy_eip7702(provider: &DynProvider) -> Result<Eip7702Report, Error> {
    let chain_id = provider.get_chain_id().await.map_err(rpc)?;
    let deployer_code = provider.get_code_at(DETERMINISTIC_DEPLOYER).await.map_err(rpc)?;
    if deployer_code[..] != *DEPLOYER_CODE {
        return Err(Error::Deploy(format!(
            "chain {chain_id} has no deterministic deployment proxy at {DETERMINISTIC_DEPLOYER} (code hash {}): \
             EntryPoint v0.8 and the 7702 account would not be at their canonical addresses",
            keccak256(&deployer_code)
        )));
    }
    let contracts = eip7702();
    let account = account_7702_item(canonical().validator);
    // Each with how code found at its address is recognised.
    let is_account = |code: &[u8]| same_code(account.artifact, account.runtime, code);
    let wanted = [
        (
            "entry_point_v08",
            ENTRY_POINT_V08_SALT,
            &entry_point_v08::EntryPointV08::BYTECODE[..],
            contracts.entry_point_v08,
            &same_entry_point_v08 as &(dyn Fn(&[u8]) -> bool + Sync),
        ),
        (account.name, SALT, &account.init_code[..], contracts.account_7702, &is_account),
    ];
    let mut missing = Vec::new();
    let mut verified = Vec::new();
    for (name, salt, init_code, address, is_expected) in wanted {
        let code = provider.get_code_at(address).await.map_err(rpc)?;
        if code.is_empty() {
            missing.push((name, salt, init_code, address));
        } else if is_expected(&code) {
            verified.push(name);
        } else {
            return Err(Error::Deploy(format!(
                "{address} on chain {chain_id} holds code that is not the {name} (code hash {}, {} bytes): refusing \
                 to use it",
                keccak256(&code),
                code.len()
            )));
        }
    }
    let mut deployed = Vec::new();
    let mut transactions = Vec::new();
    for (name, salt, init_code, address) in missing {
        transactions.push(create2(provider, name, salt, init_code, address).await?);
        deployed.push(name);
    }
    Ok(Eip7702Report { chain_id, contracts, deployed, verified, transactions })
}

/// Whether `code` is EntryPoint v0.8's runtime code. Its immutables include its EIP-712 domain's
/// cached chain id and separator, so its code differs from chain to chain, and the published
/// artifact does not say where they are: its runtime code has zeros there, so a byte the artifact
/// has as zero may differ, every other must match.
fn same_entry_point_v08(code: &[u8]) -> bool {
    let expected = &entry_point_v08::EntryPointV08::DEPLOYED_BYTECODE[..];
    code.len() == expected.len() && expected.iter().zip(code).all(|(e, c)| *e == 0 || e == c)
}

/// Creates `init_code` through the deterministic deployment proxy with `salt`, and checks that
/// code is at `address` (where the proxy puts it) after: the transaction's hash.
pub(crate) async fn create2(
    provider: &DynProvider,
    name: &str,
    salt: B256,
    init_code: &[u8],
    address: Address,
) -> Result<B256, Error> {
    let input = [salt.as_slice(), init_code].concat();
    let tx = TransactionRequest::default().to(DETERMINISTIC_DEPLOYER).input(Bytes::from(input).into());
    let receipt = provider.send_transaction(tx).await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
    if !receipt.status() {
        return Err(Error::Deploy(format!("creating the {name} failed in {}", receipt.transaction_hash)));
    }
    if provider.get_code_at(address).await.map_err(rpc)?.is_empty() {
        return Err(Error::Deploy(format!("the {name} is not at {address} after {}", receipt.transaction_hash)));
    }
    Ok(receipt.transaction_hash)
}

/// EntryPoint v0.7's runtime code hash: the same on every chain (its one immutable, the
/// SenderCreator it creates, is at the same address wherever the EntryPoint is).
pub const ENTRY_POINT_CODE_HASH: B256 = b256!("0x8db5ff695839d655407cc8490bb7a5d82337a86a6b39c3f0258aa6c3b582fc58");

fn verify_entry_point(chain_id: u64, code: &[u8]) -> Result<(), Error> {
    let hash = keccak256(code);
    if hash != ENTRY_POINT_CODE_HASH {
        return Err(Error::Deploy(format!(
            "{} on chain {chain_id} holds code that is not EntryPoint v0.7 (code hash {hash}, expected \
             {ENTRY_POINT_CODE_HASH})",
            valet_core::ENTRY_POINT_V07
        )));
    }
    Ok(())
}
