//! A local devnet: the pinned anvil on a free loopback port, EntryPoint v0.7 at its canonical
//! address (CREATE2 through the deterministic deployer, from its published bytecode), and the
//! Valet and demo contracts. Dropping the [`Devnet`] stops anvil.

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, Bytes, address, b256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;

use crate::Error;
use crate::contracts::{SessionKeyValidator, ValetAccountFactory, ValetDAO, ValetNFT, ValetToken, entry_point};

/// The deterministic CREATE2 deployer anvil has in genesis.
pub const CREATE2_DEPLOYER: Address = address!("0x4e59b44847b379578588920cA78FbF26c0B4956C");

/// Where everything lives on the devnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevnetAddresses {
    /// EntryPoint v0.7.
    pub entry_point: Address,
    /// The SessionKeyValidator.
    pub validator: Address,
    /// The ValetAccountFactory.
    pub factory: Address,
    /// The demo ERC-721.
    pub nft: Address,
    /// The demo ERC-20.
    pub token: Address,
    /// The demo DAO.
    pub dao: Address,
}

/// A running devnet. Dev keys: 0 deploys, 1 relays (submits `handleOps`), 2 funds, the rest are free.
pub struct Devnet {
    anvil: AnvilInstance,
    /// Contract addresses.
    pub addresses: DevnetAddresses,
    /// A provider signing with the deployer key.
    pub provider: DynProvider,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet").field("endpoint", &self.endpoint()).field("addresses", &self.addresses).finish()
    }
}

/// The pinned anvil under `tools/` (the workspace root is found from this crate's location, or
/// from `VALET_TOOLS`).
pub fn anvil_path() -> PathBuf {
    let tools = std::env::var_os("VALET_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools"));
    tools.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Rpc(e.to_string())
}

impl Devnet {
    /// Starts anvil (Prague, 127.0.0.1, a free port) and deploys everything.
    pub async fn start() -> Result<Self, Error> {
        let path = anvil_path();
        if !path.exists() {
            return Err(Error::AnvilMissing(path.display().to_string()));
        }
        let anvil = Anvil::at(&path)
            .args(["--host", "127.0.0.1", "--hardfork", "prague"])
            .try_spawn()
            .map_err(|e| Error::AnvilStart(e.to_string()))?;
        let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(loopback_url(anvil.port()))
            .erased();

        let entry_point = deploy_entry_point(&provider).await?;
        let validator = *SessionKeyValidator::deploy(&provider).await.map_err(rpc)?.address();
        let factory =
            *ValetAccountFactory::deploy(&provider, validator, deployer.address()).await.map_err(rpc)?.address();
        let nft = *ValetNFT::deploy(&provider).await.map_err(rpc)?.address();
        let token = *ValetToken::deploy(&provider).await.map_err(rpc)?.address();
        let dao = *ValetDAO::deploy(&provider).await.map_err(rpc)?.address();
        let addresses = DevnetAddresses { entry_point, validator, factory, nft, token, dao };
        tracing::info!(endpoint = %loopback_url(anvil.port()), ?addresses, "devnet ready");
        Ok(Self { anvil, addresses, provider })
    }

    /// The JSON-RPC endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        loopback_url(self.anvil.port()).to_string()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// Dev key `i` (anvil's mnemonic accounts).
    pub fn key(&self, i: usize) -> PrivateKeySigner {
        self.anvil.keys()[i].clone().into()
    }

    /// A provider that signs with dev key `i`.
    pub fn provider_for(&self, i: usize) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.key(i)))
            .connect_http(self.anvil.endpoint_url())
            .erased()
    }
}

/// `http://127.0.0.1:PORT`: always the IPv4 loopback, never a name that could resolve elsewhere.
fn loopback_url(port: u16) -> alloy::transports::http::reqwest::Url {
    format!("http://127.0.0.1:{port}").parse().expect("a loopback URL parses")
}

async fn deploy_entry_point(provider: &DynProvider) -> Result<Address, Error> {
    let salt = b256!("0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3");
    let mut input = salt.to_vec();
    input.extend_from_slice(&entry_point::EntryPoint::BYTECODE);
    let tx = TransactionRequest::default().to(CREATE2_DEPLOYER).input(Bytes::from(input).into());
    provider.send_transaction(tx).await.map_err(rpc)?.get_receipt().await.map_err(rpc)?;
    let code = provider.get_code_at(valet_core::ENTRY_POINT_V07).await.map_err(rpc)?;
    if code.is_empty() {
        return Err(Error::Deploy("EntryPoint v0.7 is not at its canonical address".into()));
    }
    Ok(valet_core::ENTRY_POINT_V07)
}
