//! Accounts: an owner's counterfactual account and what it holds; names and token units for summaries.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use valet_core::spec::Labels;

use crate::Service;

use super::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountQuery {
    salt: Option<String>,
    /// `smart` (default) or `eip7702`.
    kind: Option<String>,
}

pub(crate) async fn account(
    State(service): State<Arc<Service>>,
    Authed(_): Authed,
    Path(owner): Path<String>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> ApiResult {
    let owner = parse_address(&owner, "owner")?;
    let salt = q.salt.as_deref().map(parse_salt).transpose()?.unwrap_or_default();
    let kind = super::sessions::requested_kind(q.kind.as_deref())?;
    let valet = service.valet_for(kind)?;
    if kind == valet_client::AccountKind::Eip7702 && !salt.is_zero() {
        return Err(ApiError::bad(format!(
            "salt {salt}: an eip7702 account is the owner's EOA {owner} itself, it has no salt (give none, or 0)"
        )));
    }
    let account = valet.account(owner, salt).await?;
    // An EOA's: whether its code delegates to Valet's implementation (`0xef0100 ‖ address`);
    // `deployed` says whether it also activated it.
    let delegated = match kind {
        valet_client::AccountKind::Smart => None,
        valet_client::AccountKind::Eip7702 => Some(valet.is_delegated(owner).await?),
    };
    let balance = service
        .valet
        .provider()
        .get_balance(account.address)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}")))?;
    // Balances at the tokens and collections the service knows by name: whatever answers
    // `symbol()` and `balanceOf(account)`. An ERC-20 in base units with its decimals; an ERC-721
    // as a count with the ids the account holds.
    let mut tokens = serde_json::Map::new();
    for (name, address) in &service.names {
        let token = valet_client::contracts::demo::ValetToken::new(*address, service.valet.provider());
        let (Ok(symbol), Ok(held)) = (token.symbol().call().await, token.balanceOf(account.address).call().await)
        else {
            continue;
        };
        let mut entry = json!({ "address": address, "symbol": symbol, "balance": held.to_string() });
        let erc165 = Erc165::new(*address, service.valet.provider());
        if erc165.supportsInterface(ERC721_INTERFACE.into()).call().await.unwrap_or(false) {
            entry["kind"] = json!("erc721");
            entry["token_ids"] = json!(held_token_ids(&service, *address, account.address).await?);
        } else if let Ok(decimals) = token.decimals().call().await {
            entry["kind"] = json!("erc20");
            entry["decimals"] = json!(decimals);
        }
        tokens.insert(name.clone(), entry);
    }
    let mut answer = json!({
        "address": account.address, "owner": owner, "salt": salt.to_string(), "kind": crate::kind_name(kind),
        "deployed": account.deployed, "balance_wei": balance.to_string(), "tokens": tokens,
    });
    if let Some(delegated) = delegated {
        answer["delegated"] = json!(delegated);
        answer["implementation"] = json!(valet.deployment().factory);
    }
    ok(StatusCode::OK, answer)
}

alloy::sol! {
    #[sol(rpc)]
    interface Erc165 {
        function supportsInterface(bytes4 interfaceId) external view returns (bool);
    }
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
}

/// ERC-721's ERC-165 interface id.
pub(crate) const ERC721_INTERFACE: [u8; 4] = [0x80, 0xac, 0x58, 0xcd];

/// The ids of `collection` that `holder` holds, from its Transfer events in chain order (the
/// most recent 1,000).
pub(crate) async fn held_token_ids(
    service: &Service,
    collection: Address,
    holder: Address,
) -> Result<Vec<String>, ApiError> {
    use alloy::sol_types::SolEvent as _;
    let filter =
        alloy::rpc::types::Filter::new().address(collection).event_signature(Transfer::SIGNATURE_HASH).from_block(0);
    let provider = service.valet.provider();
    let unavailable = |e: alloy::transports::TransportError| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("node: {e}"))
    };
    let holder_topic = holder.into_word();
    let mut logs = provider.get_logs(&filter.clone().topic2(holder_topic)).await.map_err(unavailable)?;
    logs.extend(provider.get_logs(&filter.topic1(holder_topic)).await.map_err(unavailable)?);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut held: Vec<U256> = Vec::new();
    for log in logs {
        let Ok(transfer) = Transfer::decode_log(&log.inner) else { continue };
        held.retain(|id| *id != transfer.tokenId);
        if transfer.to == holder {
            held.push(transfer.tokenId);
        }
    }
    let skip = held.len().saturating_sub(1000);
    Ok(held.into_iter().skip(skip).map(|id| id.to_string()).collect())
}

pub(crate) fn labels(names: &BTreeMap<String, Address>) -> Labels {
    let mut labels = Labels::default();
    for (name, address) in names {
        labels.names.insert(*address, name.clone());
    }
    labels
}

/// [`labels`], with amounts of `tokens` in each token's own units, as it states them on chain.
pub(crate) async fn token_labels(service: &Service, names: &BTreeMap<String, Address>, tokens: &[Address]) -> Labels {
    let mut labels = labels(names);
    for &address in tokens {
        let erc20 = valet_client::contracts::demo::ValetToken::new(address, service.valet.provider());
        if let (Ok(symbol), Ok(decimals)) = (erc20.symbol().call().await, erc20.decimals().call().await) {
            labels.tokens.insert(address, (symbol, decimals));
        }
    }
    labels
}
