//! HTTP JSON-RPC clients with deadlines: a node or bundler that stalls makes a call fail after
//! [`CALL_TIMEOUT`] instead of holding its caller (and whatever lock it holds) forever.

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;

use crate::Error;

/// How long one JSON-RPC call may take, from connecting to the last byte of the answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A JSON-RPC client for `url` whose calls time out (see [`CALL_TIMEOUT`]).
pub fn http_client(url: &str) -> Result<RpcClient, Error> {
    let parsed: reqwest::Url = url.parse().map_err(|e| Error::Config(format!("URL `{url}`: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| Error::Config(format!("an HTTP client for `{url}`: {e}")))?;
    Ok(ClientBuilder::default().http_with_client(http, parsed))
}

/// A read-only provider for the node at `url`, with call deadlines.
pub fn http_provider(url: &str) -> Result<DynProvider, Error> {
    Ok(ProviderBuilder::new().connect_client(http_client(url)?).erased())
}

/// A provider for the node at `url` that signs with `key`, with call deadlines.
pub fn http_wallet_provider(url: &str, key: PrivateKeySigner) -> Result<DynProvider, Error> {
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_client(http_client(url)?).erased())
}
