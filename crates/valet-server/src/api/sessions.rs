//! Sessions: propose, grant, show, list, revoke (in the service and on chain).

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::eips::eip7702::Authorization;
use alloy::primitives::{Address, B256, Bytes, U256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use valet_client::session::Wiping;
use valet_client::{Account, AccountKind, Error as ClientError};
use valet_core::spec::{Function, SessionSpec};
use valet_core::{Session, eip712};

use crate::Service;
use crate::reconcile::Landed;
use crate::vault::{App, Audit, SessionRow};

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Propose {
    pub(crate) owner: String,
    #[serde(default)]
    pub(crate) salt: Option<String>,
    /// A TOML spec (string) or a JSON spec (object)…
    #[serde(default)]
    pub(crate) spec: Option<Value>,
    /// …or an ERC-7715-style permission request.
    #[serde(default)]
    pub(crate) permission_request: Option<Value>,
    /// How fees are paid (a spec's `fees`: `"sponsored"` or `{budget, per_period, period,
    /// paymasters}`), for a permission request, which has no word for them; absent: sponsored.
    #[serde(default)]
    pub(crate) fees: Option<Value>,
    #[serde(default)]
    pub(crate) names: BTreeMap<String, String>,
    /// `smart` (default: a ValetAccount clone at a counterfactual address) or `eip7702` (the
    /// owner's EOA itself, delegating to Valet: salt 0).
    #[serde(default)]
    pub(crate) account_kind: Option<String>,
    /// The chains to grant the session on with one owner signature (a multichain grant: one
    /// session per chain, same owner and salt); absent: the main chain only. Smart accounts only.
    #[serde(default)]
    pub(crate) chains: Option<Vec<u64>>,
}

/// The chains of a multichain proposal, checked: at least one, distinct, at most
/// [`valet_core::signature::MAX_CHAINS`], each served; smart accounts only.
fn requested_chains(service: &Service, chains: &[u64], kind: AccountKind) -> Result<(), ApiError> {
    use valet_core::signature::MAX_CHAINS;
    if kind != AccountKind::Smart {
        return Err(ApiError::bad(format!(
            "chains: a multichain grant is for smart accounts; account_kind `{}` grants on the main chain only \
             (give no chains)",
            crate::kind_name(kind)
        )));
    }
    if chains.is_empty() {
        return Err(ApiError::bad(
            "chains is empty: list at least one chain id, or leave chains out for the main chain",
        ));
    }
    if chains.len() > MAX_CHAINS {
        return Err(ApiError::bad(format!(
            "chains lists {} chains; one grant covers at most {MAX_CHAINS}",
            chains.len()
        )));
    }
    for (i, chain_id) in chains.iter().enumerate() {
        if chains[..i].contains(chain_id) {
            return Err(ApiError::bad(format!("chains lists chain {chain_id} twice: one session per chain")));
        }
        service.valet_on(*chain_id, kind)?;
    }
    Ok(())
}

/// The account kind a request names (`smart` when it names none); 400 naming any other value.
pub(crate) fn requested_kind(kind: Option<&str>) -> Result<AccountKind, ApiError> {
    match kind {
        None => Ok(AccountKind::Smart),
        Some(name) => crate::parse_kind(name).ok_or_else(|| {
            ApiError::bad(format!("account_kind `{name}` is not one this service knows: give `smart` or `eip7702`"))
        }),
    }
}

/// What the owner's EOA signs to delegate to Valet (`authorization`), as the API shows it: its
/// fields and the hash the wallet signs (EIP-7702's `keccak256(0x05 ‖ rlp([chain_id, address,
/// nonce]))`).
pub(crate) fn delegation_json(authorization: &Authorization) -> Value {
    json!({
        "chain_id": authorization.chain_id.to_string(),
        "address": authorization.address,
        "nonce": authorization.nonce,
        "signing_hash": authorization.signature_hash(),
    })
}

pub(crate) async fn propose(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    ApiJson(req, _): ApiJson<Propose>,
) -> ApiResult {
    let owner = parse_address(&req.owner, "owner")?;
    let salt = req.salt.as_deref().map(parse_salt).transpose()?.unwrap_or_default();
    let kind = requested_kind(req.account_kind.as_deref())?;
    let valet = service.valet_for(kind)?;
    if let Some(chains) = &req.chains {
        requested_chains(&service, chains, kind)?;
    }
    if kind == AccountKind::Eip7702 && !salt.is_zero() {
        return Err(ApiError::bad(format!(
            "salt {salt}: an eip7702 account is the owner's EOA {owner} itself, it has no salt (give none, or 0)"
        )));
    }
    let spec = match (&req.spec, &req.permission_request) {
        (Some(Value::String(toml)), None) => SessionSpec::from_toml(toml),
        (Some(spec @ Value::Object(_)), None) => SessionSpec::from_json(&spec.to_string()),
        (Some(_), None) => return Err(ApiError::bad("spec must be a TOML string or a JSON object")),
        (None, Some(request @ Value::Object(_))) => valet_core::spec::from_erc7715(request, valet.chain_id()),
        (None, Some(_)) => return Err(ApiError::bad("permission_request must be a JSON object")),
        (Some(_), Some(_)) => return Err(ApiError::bad("give spec or permission_request, not both")),
        (None, None) => return Err(ApiError::bad("give spec (TOML or JSON) or permission_request (ERC-7715)")),
    }
    .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut spec = spec;
    if let Some(fees) = &req.fees {
        if req.permission_request.is_none() {
            return Err(ApiError::bad(
                "fees go inside the spec (its [fees] table); the top-level fees is for permission_request",
            ));
        }
        let parsed: valet_core::spec::FeesSpec = serde_json::from_value(fees.clone())
            .map_err(|e| ApiError::bad(format!("fees: {e} (\"sponsored\", or {{\"budget\": \"0.01 ether\"}})")))?;
        spec.fees = Some(parsed);
    }
    let mut names = service.names.clone();
    for (name, address) in &req.names {
        names.insert(name.clone(), parse_address(address, &format!("names.{name}"))?);
    }
    // Everything that can be checked without the chain first — counts, sizes, names, rules —
    // so that a spec with 25,000 limits is a 400 at once, not after 25,000 token lookups.
    let offline = valet_core::spec::SpecContext {
        now: crate::vault::now().max(1) as u64,
        session_key: Address::repeat_byte(0x01),
        account_epoch: 0,
        names: names.clone(),
    };
    spec.resolve(&offline).map_err(|e| ApiError::bad(e.to_string()))?;
    if let Some(chains) = &req.chains {
        return propose_multichain(&service, &app, owner, salt, &spec, &names, chains).await;
    }
    let account = valet.account(owner, salt).await?;
    // An EOA that does not delegate to Valet yet: its owner signs the delegation with the grant
    // (the session's first operation carries it). A bundler cannot activate the account in a
    // session's operation: the owner upgrades the EOA first (the SDK's rule).
    let delegation = match kind {
        AccountKind::Smart => None,
        AccountKind::Eip7702 => {
            if !account.deployed && valet.submitter().kind() == "bundler" {
                return Err(ApiError::conflict(
                    "upgrade_required",
                    format!(
                        "{owner} is not a Valet account yet (delegated to {} and activated), and this service submits \
                         through a bundler, which cannot activate it in a session's operation: the owner upgrades \
                         the EOA first (one owner operation: the SDK's Valet::upgrade), then proposes again",
                        valet.deployment().factory
                    ),
                ));
            }
            valet.delegation(&account).await?
        }
    };
    let labels = spec_labels(&service, &spec, &names).await;
    // The fresh session key: made on a stack wiped after every poll, and boxed before it leaves
    // it, so that it is in one place (wiped when the proposal is dropped).
    let proposal = Wiping::new(async { valet.propose(&account, &spec, &names, &labels).await.map(Box::new) })
        .await
        .map_err(proposal_error)?;
    let functions = spec_functions(&spec)?;
    let deployment = valet.deployment();
    let typed_data =
        eip712::grant_typed_data(&proposal.session, account.address, deployment.validator, valet.chain_id())
            .map_err(|e| ApiError::bad(e.to_string()))?;
    let id = proposal.id;
    let row = SessionRow {
        id: id.to_string(),
        app_id: app.id.clone(),
        chain_id: valet.chain_id() as i64,
        validator: deployment.validator.to_string(),
        account: account.address.to_string(),
        owner: owner.to_string(),
        salt: salt.to_string(),
        session_key: proposal.key.address().to_string(),
        packed: proposal.session.encode().map_err(|e| ApiError::bad(e.to_string()))?.to_string(),
        functions: serde_json::to_string(&functions).unwrap_or_default(),
        names: serde_json::to_string(&names).unwrap_or_default(),
        summary: serde_json::to_string(&proposal.summary).unwrap_or_default(),
        sealed_key: alloy::hex::encode(service.master.seal(id, &proposal.key)?),
        grant_sig: None,
        status: "proposed".into(),
        created_at: crate::vault::now(),
        account_kind: crate::kind_name(kind).into(),
        delegation: None,
        grant_group: None,
        grant_position: None,
    };
    service.vault.insert_session(&row).await?;
    service
        .vault
        .audit(
            &app.id,
            Some(&row.account),
            Some(&row.id),
            "session.proposed",
            &json!({ "summary": proposal.summary, "warnings": proposal.warnings }),
        )
        .await?;
    service.metrics.inc("valet_sessions_total", &[("event", "proposed")]);
    let fee_estimate = fee_estimate(valet, account.deployed).await;
    let mut answer = json!({
            "session_id": id,
            "status": "proposed",
            "account_kind": row.account_kind,
            "account": account.address,
            "account_deployed": account.deployed,
            "session_key": proposal.key.address(),
            "valid_after": proposal.session.valid_after,
            "valid_until": proposal.session.valid_until,
            "summary": proposal.summary,
            "warnings": proposal.warnings,
            "digest": proposal.digest,
            "typed_data": typed_data,
            "fee_estimate": fee_estimate,
    });
    if let Some(delegation) = &delegation {
        answer["delegation"] = delegation_json(delegation);
    }
    ok(StatusCode::CREATED, answer)
}

/// The labels a spec's summary and refusals use: the names given, and the tokens its limits
/// name (their symbols and decimals, read from the chain).
async fn spec_labels(
    service: &Service,
    spec: &SessionSpec,
    names: &BTreeMap<String, Address>,
) -> valet_core::spec::Labels {
    let tokens = spec
        .limits
        .iter()
        .filter_map(|l| l.token.as_deref())
        .filter_map(|t| valet_client::abi::resolve_address(t, names).ok())
        .collect::<Vec<_>>();
    token_labels(service, names, &tokens).await
}

/// Each permission's function as the spec names it (with its argument names), as stored.
fn spec_functions(spec: &SessionSpec) -> Result<Vec<Option<String>>, ApiError> {
    Ok(spec
        .functions()
        .map_err(|e| ApiError::bad(e.to_string()))?
        .iter()
        .map(|f| f.as_ref().map(Function::signature_with_names))
        .collect())
}

/// A proposal the client could not make: the spec's fault (400) or the chain's.
fn proposal_error(e: ClientError) -> ApiError {
    match e {
        ClientError::Core(c) => ApiError::bad(c.to_string()),
        other => other.into(),
    }
}

/// `POST /v1/sessions` with `chains`: a session proposed on each chain (the same owner and salt,
/// so the same account address wherever the factory is Valet's), combined into one multichain
/// grant the owner signs once; one row per chain, sharing the grant's digest as `grant_group`.
async fn propose_multichain(
    service: &Service,
    app: &App,
    owner: Address,
    salt: U256,
    spec: &SessionSpec,
    names: &BTreeMap<String, Address>,
    chains: &[u64],
) -> ApiResult {
    let mut valets = Vec::with_capacity(chains.len());
    let mut accounts = Vec::with_capacity(chains.len());
    for chain_id in chains {
        let valet = service.valet_on(*chain_id, AccountKind::Smart)?;
        accounts.push(valet.account(owner, salt).await?);
        valets.push(valet);
    }
    let labels = spec_labels(service, spec, names).await;
    // The fresh session keys, one per chain: made on a stack wiped after every poll, and kept in
    // the boxed proposal (wiped when it is dropped).
    let proposal = Wiping::new(async {
        let mut proposals = Vec::with_capacity(valets.len());
        for (valet, account) in valets.iter().zip(&accounts) {
            proposals.push(valet.propose(account, spec, names, &labels).await?);
        }
        valet_client::MultichainProposal::new(proposals).map(Box::new)
    })
    .await
    .map_err(proposal_error)?;
    let functions = spec_functions(spec)?;
    let typed_data = proposal.typed_data()?;
    let grant_id = proposal.digest.to_string();
    let mut rows = Vec::with_capacity(proposal.proposals.len());
    for (position, p) in proposal.proposals.iter().enumerate() {
        let entry = p.chain_grant();
        rows.push(SessionRow {
            id: p.id.to_string(),
            app_id: app.id.clone(),
            chain_id: entry.chain_id as i64,
            validator: entry.validator.to_string(),
            account: p.account.address.to_string(),
            owner: owner.to_string(),
            salt: salt.to_string(),
            session_key: p.key.address().to_string(),
            packed: p.session.encode().map_err(|e| ApiError::bad(e.to_string()))?.to_string(),
            functions: serde_json::to_string(&functions).unwrap_or_default(),
            names: serde_json::to_string(names).unwrap_or_default(),
            summary: serde_json::to_string(&p.summary).unwrap_or_default(),
            sealed_key: alloy::hex::encode(service.master.seal(p.id, &p.key)?),
            grant_sig: None,
            status: "proposed".into(),
            created_at: crate::vault::now(),
            account_kind: crate::kind_name(AccountKind::Smart).into(),
            delegation: None,
            grant_group: Some(grant_id.clone()),
            grant_position: Some(position as i64),
        });
    }
    service.vault.insert_sessions(&rows).await?;
    let mut sessions = Vec::with_capacity(rows.len());
    for ((p, row), valet) in proposal.proposals.iter().zip(&rows).zip(&valets) {
        let detail = json!({
            "summary": p.summary,
            "warnings": p.warnings,
            "grant_id": grant_id,
            "chain_id": p.chain_id(),
            "grant_position": row.grant_position,
        });
        service.vault.audit(&app.id, Some(&row.account), Some(&row.id), "session.proposed", &detail).await?;
        service.metrics.inc("valet_sessions_total", &[("event", "proposed")]);
        sessions.push(json!({
            "chain_id": p.chain_id(),
            "chain_name": valet_client::chain_name(p.chain_id()),
            "session_id": p.id,
            "account": p.account.address,
            "account_deployed": p.account.deployed,
            "session_key": p.key.address(),
            "valid_after": p.session.valid_after,
            "valid_until": p.session.valid_until,
            "summary": p.summary,
            "warnings": p.warnings,
            "fee_estimate": fee_estimate(valet, p.account.deployed).await,
        }));
    }
    ok(
        StatusCode::CREATED,
        json!({
            "grant_id": grant_id,
            "status": "proposed",
            "account_kind": "smart",
            "owner": owner,
            "digest": proposal.digest,
            "typed_data": typed_data,
            "summary": proposal.summary,
            "sessions": sessions,
        }),
    )
}

/// Gas of a later operation of a session: a session's mint with the session already enabled
/// (gas.json `session_mint_tx`, the whole transaction, from contracts/test/GasTable.t.sol).
const LATER_OPERATION_GAS: u64 = 140_293;
/// Gas of a session's first operation on a deployed account: it enables the session and makes
/// one call (gas.json `session_enable_and_mint_tx`).
const ENABLE_AND_CALL_GAS: u64 = 175_260;
/// What creating the account adds to the first operation (the factory's deployment, its
/// validation and the first writes to a fresh account's storage). gas.json measures operations
/// of an account that exists, so this is measured on the devnet instead: a first session mint on
/// a new account used 428,082 gas, 252,822 more than `session_enable_and_mint_tx` (tests/api.rs
/// `the_fee_estimate_is_near_what_a_first_and_a_later_mint_cost` keeps the sum honest).
const ACCOUNT_CREATION_GAS: u64 = 253_000;

/// Roughly what the session's first operation (creating the account if it is not deployed,
/// enabling the session, one call) and each later one cost now: typical gas times the price an
/// operation pays under EIP-1559 at the fees the service's submitter would offer, the latest
/// block's base fee plus their priority fee, at most their maximum fee (an operation's
/// maximum cost, which the fee budget reserves, is about twice that). `null` when the chain
/// cannot say.
async fn fee_estimate(valet: &valet_client::Valet, deployed: bool) -> Value {
    use alloy::providers::Provider as _;
    let Ok(fees) = valet.submitter().fees().await else { return Value::Null };
    let base = match valet.provider().get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await {
        Ok(Some(block)) => block.header.base_fee_per_gas.map(u128::from),
        _ => None,
    };
    let paid = base.map_or(fees.max_fee_per_gas, |b| b.saturating_add(fees.max_priority_fee_per_gas));
    let price = U256::from(paid.min(fees.max_fee_per_gas));
    let first = ENABLE_AND_CALL_GAS + if deployed { 0 } else { ACCOUNT_CREATION_GAS };
    json!({
        "gas_price_wei": price.to_string(),
        "first_operation_wei": (price * U256::from(first)).to_string(),
        "later_operation_wei": (price * U256::from(LATER_OPERATION_GAS)).to_string(),
    })
}

pub(crate) async fn load(service: &Service, app: &App, id: &str) -> Result<(SessionRow, Session, B256), ApiError> {
    let parsed = parse_session_id(id)?;
    let row = service
        .vault
        .session(&app.id, &parsed.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no session {parsed} for this app")))?;
    let packed: Bytes =
        row.packed.parse().map_err(|_| ApiError::from(crate::Error::Database("stored session is not hex".into())))?;
    let session =
        Session::decode(&packed).map_err(|e| ApiError::from(crate::Error::Database(format!("stored session: {e}"))))?;
    Ok((row, session, parsed))
}

pub(crate) fn row_account(row: &SessionRow) -> Result<Account, ApiError> {
    let bad = |what: &str| ApiError::from(crate::Error::Database(format!("stored {what} is malformed")));
    Ok(Account {
        address: row.account.parse().map_err(|_| bad("account"))?,
        owner: row.owner.parse().map_err(|_| bad("owner"))?,
        salt: row.salt.parse().map_err(|_| bad("salt"))?,
        deployed: false,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grant {
    pub(crate) signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantSession {
    pub(crate) signature: String,
    /// Of an eip7702 session whose EOA does not delegate to Valet yet: the owner EOA's
    /// signature (65 bytes) of the proposal's `delegation.signing_hash`.
    #[serde(default)]
    pub(crate) delegation_signature: Option<String>,
}

/// The signed delegation of an eip7702 session's grant, as stored (JSON of an operation's
/// `eip7702Auth`): `None` when the EOA delegates to Valet already (a signature given anyway is
/// not needed and not kept). 400 `delegation_required` when one is needed and missing; 400
/// naming the signer when it is not the owner's.
async fn granted_delegation(
    valet: &valet_client::Valet,
    account: &Account,
    signature: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(authorization) = valet.delegation(account).await? else { return Ok(None) };
    let Some(signature) = signature else {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "delegation_required",
            format!(
                "{} does not delegate to Valet's account {} yet: give delegation_signature, the owner EOA's \
                 signature of the delegation's signing_hash {}",
                account.address,
                authorization.address,
                authorization.signature_hash()
            ),
        );
        e.extra = Some(json!({ "delegation": delegation_json(&authorization) }));
        return Err(e);
    };
    let signature =
        parse_signature(signature).map_err(|e| ApiError::bad(format!("delegation_signature: {}", e.message)))?;
    let parsed = alloy::primitives::Signature::try_from(signature.as_ref())
        .map_err(|e| ApiError::bad(format!("delegation_signature: {e}")))?;
    let hash = authorization.signature_hash();
    let signer =
        parsed.recover_address_from_prehash(&hash).map_err(|e| ApiError::bad(format!("delegation_signature: {e}")))?;
    if signer != account.owner {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "delegation_not_the_owner",
            format!(
                "the delegation is signed by {signer}, not by the owner EOA {}: sign the delegation's signing_hash \
                 {hash} (chain {}, Valet's account {}, the EOA's nonce {}) with the EOA's key (if the EOA sent a \
                 transaction since the proposal its nonce moved: this is the hash to sign now)",
                account.owner, authorization.chain_id, authorization.address, authorization.nonce
            ),
        );
        e.extra = Some(json!({ "signer": signer, "delegation": delegation_json(&authorization) }));
        return Err(e);
    }
    let signed = valet_client::client::eip7702_auth(authorization.into_signed(parsed));
    Ok(Some(serde_json::to_string(&signed).map_err(|e| ApiError::bad(format!("delegation: {e}")))?))
}

pub(crate) async fn grant(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
    ApiJson(req, _): ApiJson<GrantSession>,
) -> ApiResult {
    let signature = parse_signature(&req.signature)?;
    let (row, session, id) = load(&service, &app, &id).await?;
    let valet = service.valet_of(&row)?;
    if row.account_kind != "eip7702" && req.delegation_signature.is_some() {
        return Err(ApiError::bad(format!(
            "delegation_signature is for eip7702 sessions; session {id} is of a {} account",
            row.account_kind
        )));
    }
    if let Some(group) = &row.grant_group {
        return grant_multichain(&service, &app, id, group, &signature).await;
    }
    if row.status != "proposed" {
        return Err(ApiError::conflict(
            "not_proposed",
            format!("session {id} is {}, not waiting for a grant", row.status),
        ));
    }
    let account = row_account(&row)?;
    let digest = eip712::grant_digest(&session, account.address, valet.deployment().validator, valet.chain_id())
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let signer = owners_signature(&signature, digest, account.owner, "grant")?;
    let delegation = if row.account_kind == "eip7702" {
        granted_delegation(valet, &account, req.delegation_signature.as_deref()).await?
    } else {
        None
    };
    // A session whose window closed while it waited for the owner would be granted for nothing.
    if valet.now().await? > session.valid_until {
        return Err(ApiError::conflict(
            "expired",
            format!(
                "session {id} expired at {}, before it was granted: propose a new one",
                valet_core::spec::utc(session.valid_until.saturating_add(1))
            ),
        ));
    }
    let detail = json!({ "owner": signer, "delegation": delegation.is_some() });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.granted",
        detail: &detail,
    };
    if let Some(delegation) = &delegation
        && !service.vault.propose_delegation(&row.id, delegation).await?
    {
        return Err(ApiError::conflict("not_proposed", format!("session {id} is no longer waiting for a grant")));
    }
    if !service.vault.transition(&row.id, &["proposed"], "active", Some(&signature.to_string()), &audit).await? {
        return Err(ApiError::conflict("not_proposed", format!("session {id} is no longer waiting for a grant")));
    }
    service.metrics.inc("valet_sessions_total", &[("event", "granted")]);
    ok(StatusCode::OK, json!({ "session_id": id, "status": "active" }))
}

/// `POST /v1/sessions/{id}/grant` on a session of multichain grant `group`: the owner's one
/// signature over the grant's digest, recomputed from the stored sessions in the order signed
/// (never from the request), activates every session of the grant, each with its own chain's
/// proof, or none.
async fn grant_multichain(service: &Service, app: &App, id: B256, group: &str, signature: &Bytes) -> ApiResult {
    let rows = service.vault.group_sessions(&app.id, group).await?;
    let stored = |what: String| ApiError::from(crate::Error::Database(format!("multichain grant {group}: {what}")));
    if rows.is_empty() || rows.iter().enumerate().any(|(i, r)| r.grant_position != Some(i as i64)) {
        return Err(stored("its sessions' stored positions are not 0, 1, 2, …".into()));
    }
    for r in &rows {
        if r.status != "proposed" {
            return Err(ApiError::conflict(
                "not_proposed",
                format!(
                    "session {} (chain {}) of grant {group} is {}, not waiting for a grant: nothing was granted",
                    r.id, r.chain_id, r.status
                ),
            ));
        }
    }
    let owner = row_account(&rows[0])?.owner;
    let mut entries = Vec::with_capacity(rows.len());
    let mut sessions = Vec::with_capacity(rows.len());
    for r in &rows {
        let (_, session, _) = load(service, app, &r.id).await?;
        let valet = service.valet_of(r)?;
        let account = row_account(r)?;
        if account.owner != owner {
            return Err(stored(format!("session {} is owned by {}, not by {owner}", r.id, account.owner)));
        }
        let entry = eip712::ChainGrant {
            chain_id: valet.chain_id(),
            validator: valet.deployment().validator,
            account: account.address,
            session: session.clone(),
        };
        entries.push(entry.hash().map_err(|e| ApiError::bad(e.to_string()))?);
        sessions.push((r, session, valet));
    }
    let digest = eip712::multichain_grant_digest(&entries);
    if digest.to_string() != group {
        // The stored sessions are not those the owner was shown: nothing is signed for them.
        return Err(ApiError::conflict(
            "grant_mismatch",
            format!(
                "the sessions of grant {group} now hash to {digest}, not to the grant's id: they are not what was \
                 proposed, nothing was granted (propose again)"
            ),
        ));
    }
    let signer = owners_signature(signature, digest, owner, "grant")?;
    // A session whose window closed while it waited for the owner would be granted for nothing.
    for (r, session, valet) in &sessions {
        if valet.now().await? > session.valid_until {
            return Err(ApiError::conflict(
                "expired",
                format!(
                    "session {} (chain {}) of grant {group} expired at {}, before it was granted: propose a new one",
                    r.id,
                    r.chain_id,
                    valet_core::spec::utc(session.valid_until.saturating_add(1))
                ),
            ));
        }
    }
    let mut grants = Vec::with_capacity(rows.len());
    let mut details = Vec::with_capacity(rows.len());
    for (position, r) in rows.iter().enumerate() {
        let proof = valet_core::signature::multichain_grant(&entries, position, signature)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        grants.push((r.id.as_str(), proof.to_string()));
        details.push(json!({ "owner": signer, "grant_id": group, "chain_id": r.chain_id, "grant_position": position }));
    }
    let audits: Vec<Audit<'_>> = rows
        .iter()
        .zip(&details)
        .map(|(r, detail)| Audit {
            app: &app.id,
            account: Some(&r.account),
            session: Some(&r.id),
            event: "session.granted",
            detail,
        })
        .collect();
    let pairs: Vec<(&str, &str)> = grants.iter().map(|(id, g)| (*id, g.as_str())).collect();
    if !service.vault.grant_group(&pairs, &audits).await? {
        return Err(ApiError::conflict(
            "not_proposed",
            format!("a session of grant {group} is no longer waiting for a grant: nothing was granted"),
        ));
    }
    for _ in &rows {
        service.metrics.inc("valet_sessions_total", &[("event", "granted")]);
    }
    let granted: Vec<Value> =
        rows.iter().map(|r| json!({ "session_id": r.id, "chain_id": r.chain_id, "status": "active" })).collect();
    ok(StatusCode::OK, json!({ "session_id": id, "status": "active", "grant_id": group, "sessions": granted }))
}

/// A multichain grant's sessions as `GET /v1/sessions/{id}` shows them: each one's id, chain and
/// status, in the order signed (`null` for a single-chain session).
async fn group_json(service: &Service, row: &SessionRow) -> Result<Value, ApiError> {
    let Some(group) = &row.grant_group else { return Ok(Value::Null) };
    let rows = service.vault.group_sessions(&row.app_id, group).await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "session_id": r.id,
                    "chain_id": r.chain_id,
                    "grant_position": r.grant_position,
                    "status": r.status,
                })
            })
            .collect(),
    ))
}

pub(crate) async fn session_json(service: &Service, row: &SessionRow, session: &Session) -> Result<Value, ApiError> {
    let account: Address = row_account(row)?.address;
    // What the service recorded is read before the chain is asked: a revocation recorded as
    // included was mined before it was recorded, so the chain read after it shows it too — read
    // the other way round, one answer could say "included" beside a state read just before.
    let onchain_revocation = onchain_revocation(service, &row.id).await?;
    // A session on a chain this service does not serve (any more) is shown, without its chain's
    // state, as not usable here: the others of a list stay readable.
    let status = match service.valet_of(row) {
        Ok(valet) => Ok(valet.status(account, session).await?),
        Err(e @ crate::Error::ChainNotServed { .. }) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let summary: Value = serde_json::from_str(&row.summary).unwrap_or(Value::Null);
    let (usable, reason) = match (row.status.as_str(), &status) {
        ("revoked", _) => (false, Some("revoked in the service; grant a new one".to_string())),
        (_, Err(not_served)) => (false, Some(not_served.clone())),
        ("proposed", _) => (false, Some("waiting for the owner's grant".to_string())),
        (_, Ok(status)) => (status.usable, status.reason.clone()),
    };
    let status = status.ok();
    Ok(json!({
        "session_id": row.id,
        "status": row.status,
        "chain_id": row.chain_id,
        "grant_id": row.grant_group,
        "grant_sessions": group_json(service, row).await?,
        "account_kind": row.account_kind,
        "account": row.account,
        "owner": row.owner,
        "session_key": row.session_key,
        "summary": summary,
        "usable": usable,
        "reason": reason,
        "chain": status,
        "onchain_revocation": onchain_revocation,
    }))
}

/// The owner's revocation the service puts on chain, if one was asked for.
async fn onchain_revocation(service: &Service, session: &str) -> Result<Value, ApiError> {
    Ok(match service.vault.revocation(session).await? {
        None => Value::Null,
        Some(r) => json!({
            "status": r.status,
            "transaction_hash": r.transaction_hash,
            "attempts": r.attempts,
            "last_error": r.last_error,
        }),
    })
}

pub(crate) async fn show(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let (row, session, _) = load(&service, &app, &id).await?;
    ok(StatusCode::OK, session_json(&service, &row, &session).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    account: Option<String>,
}

pub(crate) async fn list(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let account = q.account.as_deref().map(|a| parse_address(a, "account")).transpose()?;
    let rows = service.vault.sessions(&app.id, account.map(|a| a.to_string()).as_deref()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (_, session, _) = load(&service, &app, &row.id).await?;
        out.push(session_json(&service, &row, &session).await?);
    }
    ok(StatusCode::OK, json!({ "sessions": out }))
}

/// Where a session's revocation on chain stands when it was done (or is on its way) before this
/// request: the 409 `already_revoked` that a second revoke is answered with, instead of asking the
/// owner for another signature and sending a transaction that changes nothing. `pending_too`: a
/// revocation the service holds the owner's signature of and retries counts as done.
async fn already_revoked(
    service: &Service,
    row: &SessionRow,
    session: &Session,
    id: B256,
    pending_too: bool,
) -> Result<Option<ApiError>, ApiError> {
    let answer = |onchain: &str, tx: Option<String>, at: Option<u64>, message: String| {
        let mut e = ApiError::conflict("already_revoked", message);
        e.extra = Some(json!({
            "session_id": id,
            "status": "revoked",
            "onchain": onchain,
            "transaction_hash": tx,
            "revoked_at": at,
        }));
        Some(e)
    };
    let when = |at: Option<u64>| at.map(|t| format!(" at {}", valet_core::spec::utc_seconds(t))).unwrap_or_default();
    let recorded = service.vault.revocation(&row.id).await?;
    match recorded {
        Some(r) if r.status == "included" => {
            let at = u64::try_from(r.updated_at).ok();
            let tx = r.transaction_hash.clone();
            let by = tx.as_deref().map(|t| format!(" in transaction {t}")).unwrap_or_default();
            return Ok(answer(
                "included",
                tx.clone(),
                at,
                format!("session {id} is already revoked on chain{by}{}: nothing to sign", when(at)),
            ));
        }
        Some(r) if r.status == "not_needed" => {
            return Ok(answer(
                "not_needed",
                None,
                u64::try_from(r.updated_at).ok(),
                format!(
                    "session {id} is already revoked: in the service, and it was never enabled on chain, so no \
                     transaction is needed: nothing to sign"
                ),
            ));
        }
        Some(r) if r.status == "pending" && pending_too => {
            return Ok(answer(
                "pending",
                None,
                None,
                format!(
                    "session {id} is already revoked in the service, and the owner's signed revocation is on its way \
                     to the chain (the service retries until it lands; GET /v1/sessions/{id} shows when): nothing to sign"
                ),
            ));
        }
        _ => {}
    }
    // Revoked on chain without the service (the owner's own transaction, another client): the
    // chain says so, and its event says when and in which transaction.
    let account = row_account(row)?.address;
    // A chain the service does not serve cannot be asked.
    let Ok(valet) = service.valet_of(row) else { return Ok(None) };
    let Ok(chain) = valet.chain_state(account, session).await else { return Ok(None) };
    Ok(match chain.state {
        valet_client::Standing::Revoked => {
            let (tx, at) = revoked_event(valet, account, id).await.unwrap_or((None, None));
            let by = tx.map(|t| format!(" in transaction {t}")).unwrap_or_default();
            answer(
                "included",
                tx.map(|t| t.to_string()),
                at,
                format!("session {id} is already revoked on chain{by}{}: nothing to sign", when(at)),
            )
        }
        valet_client::Standing::Voided => answer(
            "voided",
            None,
            None,
            format!(
                "session {id} is already void on chain: all sessions of the account were revoked after it was \
                 granted: nothing to sign"
            ),
        ),
        _ => None,
    })
}

/// The transaction that revoked session `id` of `account` on chain and its block's time, from
/// the validator's `SessionRevoked` event.
async fn revoked_event(valet: &valet_client::Valet, account: Address, id: B256) -> Option<(Option<B256>, Option<u64>)> {
    use alloy::providers::Provider as _;
    use alloy::sol_types::SolEvent as _;
    use valet_client::contracts::SessionKeyValidator::SessionRevoked;
    let filter = alloy::rpc::types::Filter::new()
        .address(valet.deployment().validator)
        .event_signature(SessionRevoked::SIGNATURE_HASH)
        .topic1(account.into_word())
        .topic2(id)
        .from_block(0);
    let log = valet.provider().get_logs(&filter).await.ok()?.into_iter().next()?;
    let at = match (log.block_timestamp, log.block_number) {
        (Some(t), _) => Some(t),
        (None, Some(n)) => valet.provider().get_block_by_number(n.into()).await.ok()?.map(|b| b.header.timestamp),
        (None, None) => None,
    };
    Some((log.transaction_hash, at))
}

pub(crate) async fn revoke(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    let (row, session, id) = load(&service, &app, &id).await?;
    // Stop use in the service at once, before anything reaches the chain.
    let detail = json!({ "by": "app" });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.revoked",
        detail: &detail,
    };
    let changed = service.vault.transition(&row.id, &["proposed", "active"], "revoked", None, &audit).await?;
    if changed {
        service.metrics.inc("valet_sessions_total", &[("event", "revoked")]);
    }
    // An execution already under way holds the session's lane: wait for it, so that once this
    // answers nothing of the session is in flight, and every request still queued sees it
    // revoked when it gets the lane.
    drop(service.hold_lane(&row.id).await?);
    // Revoked on chain already (another tab, the owner's own transaction): said so, with when
    // and which transaction, and nothing for the owner to sign.
    if let Some(already) = already_revoked(&service, &row, &session, id, true).await? {
        return Err(already);
    }
    let account: Address = row_account(&row)?.address;
    // What the owner signs names the session's chain and validator, as stored: a session on a
    // chain the service no longer serves is revoked in the service all the same, and its owner
    // can still revoke it on that chain.
    let validator: Address = row
        .validator
        .parse()
        .map_err(|_| ApiError::from(crate::Error::Database(format!("session {id}: stored validator is malformed"))))?;
    let chain_id = u64::try_from(row.chain_id)
        .map_err(|_| ApiError::from(crate::Error::Database(format!("session {id}: stored chain id is negative"))))?;
    ok(
        StatusCode::OK,
        json!({
            "session_id": id,
            "status": "revoked",
            "onchain": {
                "digest": eip712::revoke_session_digest(account, id, validator, chain_id),
                "typed_data": eip712::revoke_session_typed_data(account, id, validator, chain_id),
                "submit": format!("POST /v1/sessions/{id}/revoke/onchain with the owner's signature"),
            },
        }),
    )
}

pub(crate) async fn revoke_onchain(
    State(service): State<Arc<Service>>,
    Authed(app): Authed,
    Path(id): Path<String>,
    ApiJson(req, _): ApiJson<Grant>,
) -> ApiResult {
    let signature = parse_signature(&req.signature)?;
    let (row, session, id) = load(&service, &app, &id).await?;
    let account = row_account(&row)?;
    let valet = service.valet_of(&row)?;
    let digest = eip712::revoke_session_digest(account.address, id, valet.deployment().validator, valet.chain_id());
    owners_signature(&signature, digest, account.owner, "revocation")?;
    let detail = json!({ "by": "owner" });
    let audit = Audit {
        app: &app.id,
        account: Some(&row.account),
        session: Some(&row.id),
        event: "session.revoked",
        detail: &detail,
    };
    // Revoked on chain already: nothing is sent, and the answer says when and by which
    // transaction (a revocation still pending may be pushed again with this signature).
    if let Some(already) = already_revoked(&service, &row, &session, id, false).await? {
        // The record follows the chain: a session revoked there is revoked here.
        service.vault.transition(&row.id, &["proposed", "active"], "revoked", None, &audit).await?;
        return Err(already);
    }
    if service.relayer_of(&row)?.is_none() {
        return Err(ApiError::conflict(
            "no_relayer",
            "this service has no relayer key: submit revokeSessionWithSignature(account, id, signature) to the validator yourself",
        ));
    }
    // Use stops in the service first (a session revoked in the service already stays so), and
    // nothing of it is in flight in this service once its lane is free.
    service.vault.transition(&row.id, &["proposed", "active"], "revoked", None, &audit).await?;
    drop(service.hold_lane(&row.id).await?);
    // Recorded before anything is sent: if this attempt does not land, the service retries it.
    service.vault.upsert_revocation(&app.id, &row.id, &signature.to_string(), "pending").await?;
    let landed = service.land_revocation(&row, &signature).await?;
    let answer = |status: StatusCode, onchain: &str, tx: Option<B256>, message: String| {
        ok(
            status,
            json!({ "session_id": id, "status": "revoked", "onchain": onchain, "transaction_hash": tx, "message": message }),
        )
    };
    match landed {
        Landed::Included(Some(tx)) => answer(StatusCode::OK, "included", Some(tx), format!("revoked on chain in transaction {tx}")),
        Landed::Included(None) => answer(StatusCode::OK, "included", None, "the chain already shows the session revoked".into()),
        Landed::NotNeeded => answer(
            StatusCode::OK,
            "not_needed",
            None,
            "the session was never enabled on chain and nothing that could enable it is in flight: its key stays unused in the service, so no transaction is needed".into(),
        ),
        Landed::Pending(reason) => answer(
            StatusCode::ACCEPTED,
            "pending",
            None,
            format!("revoked in the service; not on chain yet ({reason}): the service retries until it is, GET /v1/sessions/{id} shows when"),
        ),
        Landed::Refused(reason) => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected_by_chain", format!("the chain refuses the revocation: {reason}")))
        }
    }
}
