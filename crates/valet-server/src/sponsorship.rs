//! Gas sponsorship: the service's paymaster (its [`SponsorSigner`], the ValetPaymaster's signer
//! key) pays the network fees of its apps' operations, each app within a daily budget in wei (per
//! UTC day) that the service's admin sets.
//!
//! Every approval reserves the approved operation's maximum cost ([`max_cost`]: what the
//! EntryPoint may take from the paymaster's deposit for it) against the app's budget of the day,
//! atomically, before the approval leaves the service: an operation the budget cannot cover is
//! refused ([`Error::SponsorshipBudgetExceeded`]), and nothing signed for it is used. Then, as
//! the chain answers, the ledger entry becomes:
//!
//! - `spent` once the operation is on chain (its calls may have reverted: it was paid for): its
//!   actual cost, the UserOperationEvent's actualGasCost, counts instead;
//! - `released` when it can never reach the chain (refused before sending or by the chain, its
//!   nonce used by another operation, its session closed or revoked): it counts nothing;
//! - `expired` when its approval's validUntil passed without it: nothing either;
//! - while its outcome is unknown, its maximum cost stays reserved until reconciliation finds
//!   out ([`crate::reconcile`]).
//!
//! A released operation is still looked for on chain until its approval runs out: once signed,
//! whoever holds it may send it, and the record follows the chain.
//!
//! Two ways in: operations the service builds for an app (`BudgetedSponsor`, for executions and
//! scheduled runs alike), and ERC-7677's `pm_getPaymasterData` (`POST /v1/paymaster`), for
//! operations built elsewhere, such as by an app's browser-held session keys.

use std::sync::{Arc, Mutex, PoisonError};

use alloy::primitives::{Address, B256, U256};
use serde_json::{Value, json};
use valet_client::submit::BoxFuture;
use valet_client::{OpReceipt, Paymaster, PaymasterFields, PaymasterStub, SponsorSigner};
use valet_core::UserOperation;

use crate::vault::{self, App, DAY, NewReservation, Reservation, utc_day};
use crate::{Error, Service};

/// The most `op` can cost whoever pays for it, in wei: `(verificationGasLimit + callGasLimit +
/// paymasterVerificationGasLimit + paymasterPostOpGasLimit + preVerificationGas) ×
/// maxFeePerGas`, the prefund the EntryPoint requires (saturating: an absurd operation costs
/// `U256::MAX`, which no budget covers).
pub fn max_cost(op: &UserOperation) -> U256 {
    let gas = [
        op.verification_gas_limit,
        op.call_gas_limit,
        op.paymaster_verification_gas_limit,
        op.paymaster_post_op_gas_limit,
    ]
    .into_iter()
    .fold(op.pre_verification_gas, |sum, limit| sum.saturating_add(U256::from(limit)));
    gas.saturating_mul(U256::from(op.max_fee_per_gas))
}

/// The validUntil of a ValetPaymaster approval: its paymasterData is `validAfter (6) ‖
/// validUntil (6) ‖ signature (65)`.
pub fn approval_valid_until(paymaster_data: &[u8]) -> Option<u64> {
    let bytes: [u8; 6] = paymaster_data.get(6..12)?.try_into().ok()?;
    let mut word = [0u8; 8];
    word[2..].copy_from_slice(&bytes);
    Some(u64::from_be_bytes(word))
}

/// `amount` wei as people read it: `1230000000000000 wei (0.00123 ETH)`.
pub(crate) fn wei(amount: U256) -> String {
    match u128::try_from(amount) {
        Ok(small) => format!("{amount} wei ({} ETH)", valet_core::spec::units(small, 18)),
        Err(_) => format!("{amount} wei"),
    }
}

/// How messages name `app`: by name, or by id where the name is not at hand.
fn label(app: &App) -> String {
    if app.name.is_empty() { app.id.clone() } else { format!("`{}`", app.name) }
}

/// Why an app's operations are not sponsored, when the service has no sponsor.
pub(crate) const NO_SPONSOR: &str = "this service sponsors no operations: it runs without a paymaster (`valet serve \
                                     --paymaster ADDR` with VALET_SPONSOR_KEY)";

/// An approval the service made, and reserved the maximum cost of.
#[derive(Debug, Clone)]
pub(crate) struct Sponsored {
    /// The paymaster fields to put in the operation.
    pub(crate) fields: PaymasterFields,
    /// The approved operation's userOpHash.
    pub(crate) user_op_hash: B256,
}

impl Service {
    /// Why `app`'s operations are not sponsored (no sponsor, no budget), or `None` if they are.
    pub(crate) async fn not_sponsored(&self, app: &App) -> Result<Option<String>, Error> {
        if self.sponsor.is_none() {
            return Ok(Some(NO_SPONSOR.into()));
        }
        Ok(match self.vault.sponsorship_budget(&app.id).await? {
            Some(_) => None,
            None => Some(format!(
                "app {} has no sponsorship budget: the service's admin gives it one with PUT /v1/apps/{}/sponsorship",
                label(app),
                app.id
            )),
        })
    }

    /// Approves `op` (an operation for this service's EntryPoint and chain, with its gas limits
    /// set) with the sponsor and reserves the approved operation's maximum cost against `app`'s
    /// budget of today, atomically; `execution` is the execution it is built for, if the service
    /// builds it. Refused when the app is not sponsored or the budget cannot cover it.
    pub(crate) async fn sponsor_operation(
        &self,
        app: &App,
        op: &UserOperation,
        execution: Option<&str>,
    ) -> Result<Sponsored, Error> {
        let Some(sponsor) = &self.sponsor else { return Err(Error::NotSponsored(NO_SPONSOR.into())) };
        let (entry_point, chain_id) = (self.valet.deployment().entry_point, self.valet.chain_id());
        // Signed first (in memory only: it leaves the service once reserved for), as the
        // userOpHash the ledger is keyed by covers the approval.
        let fields = sponsor.data(op, entry_point, chain_id).await?;
        let mut approved = op.clone();
        fields.apply(&mut approved);
        let user_op_hash = approved.hash(entry_point, chain_id);
        let max_cost = max_cost(&approved);
        let valid_until = approval_valid_until(&fields.paymaster_data).ok_or_else(|| {
            Error::Config(format!("the sponsor's paymasterData {} has no validUntil", fields.paymaster_data))
        })?;
        let hash = user_op_hash.to_string();
        let sender = approved.sender.to_string();
        let reservation = NewReservation {
            app: &app.id,
            day: utc_day(vault::now()),
            user_op_hash: &hash,
            source: if execution.is_some() { "execution" } else { "erc7677" },
            execution_id: execution,
            sender: &sender,
            max_cost,
            valid_until: i64::try_from(valid_until).unwrap_or(i64::MAX),
        };
        match self.vault.reserve_sponsorship(&reservation).await? {
            Reservation::Reserved | Reservation::AlreadyReserved => {
                self.metrics.inc("valet_sponsorships_total", &[("outcome", "reserved")]);
                Ok(Sponsored { fields, user_op_hash })
            }
            Reservation::NoBudget => Err(Error::NotSponsored(
                self.not_sponsored(app)
                    .await?
                    .unwrap_or_else(|| format!("app {} has no sponsorship budget", label(app))),
            )),
            Reservation::Exceeded { budget, used } => {
                self.metrics.inc("valet_sponsorships_total", &[("outcome", "refused")]);
                Err(Error::SponsorshipBudgetExceeded { budget, left: budget.saturating_sub(used), max_cost })
            }
        }
    }

    /// Records what became of sponsored operation `user_op_hash`, if the ledger holds it: on
    /// chain (`receipt`: its actual cost counts), or never there (`ended`: `released`, `expired`).
    pub(crate) async fn sponsorship_outcome(
        &self,
        user_op_hash: &str,
        receipt: Option<&OpReceipt>,
        ended: &str,
    ) -> Result<(), Error> {
        match receipt {
            Some(r) => {
                let tx = r.transaction_hash.to_string();
                if self.vault.sponsorship_spent(user_op_hash, r.actual_gas_cost, Some(&tx)).await? {
                    self.metrics.inc("valet_sponsorships_total", &[("outcome", "spent")]);
                }
            }
            None => {
                if self.vault.end_sponsorship(user_op_hash, ended).await? {
                    self.metrics.inc("valet_sponsorships_total", &[("outcome", ended)]);
                }
            }
        }
        Ok(())
    }

    /// App `app_id`'s sponsorship today, as `GET /v1/sponsorship` shows it.
    pub(crate) async fn sponsorship_json(&self, app: &App) -> Result<Value, Error> {
        let day = utc_day(vault::now());
        let usage = self.vault.sponsorship_usage(&app.id, day).await?;
        let reason = self.not_sponsored(app).await?;
        let date: String =
            valet_core::spec::utc(u64::try_from(day * DAY).unwrap_or_default()).chars().take(10).collect();
        Ok(json!({
            "sponsored": reason.is_none(),
            "reason": reason,
            "paymaster": self.sponsor.as_ref().map(SponsorSigner::paymaster),
            "budget_wei": usage.budget.map(|b| b.to_string()),
            "spent_today_wei": usage.spent.to_string(),
            "reserved_wei": usage.reserved.to_string(),
            "left_wei": usage.left().to_string(),
            "day": date,
            "resets_at": (day + 1) * DAY,
        }))
    }
}

/// The paymaster the service builds an app's session operations with: its sponsor, each approval
/// reserved for against the app's budget first ([`Service::sponsor_operation`]). It remembers
/// what it reserved, so that what never leaves the service is released, and why it refused.
pub(crate) struct BudgetedSponsor {
    service: Arc<Service>,
    app: App,
    execution_id: String,
    name: String,
    /// The operations it reserved for, in order.
    reserved: Mutex<Vec<B256>>,
    /// What the service refused or failed with (the budget, the database), for the caller to
    /// answer with: the client sees it only as a paymaster error.
    failure: Mutex<Option<Error>>,
}

impl BudgetedSponsor {
    /// A sponsor for `app`'s execution `execution_id`; `None` if the service has no sponsor.
    pub(crate) fn new(service: Arc<Service>, app: App, execution_id: &str) -> Option<Self> {
        let name = service.sponsor.as_ref()?.name().to_string();
        Some(Self {
            service,
            app,
            execution_id: execution_id.to_string(),
            name,
            reserved: Mutex::default(),
            failure: Mutex::default(),
        })
    }

    /// Why it did not sponsor the last operation it was asked for, if the service refused or
    /// failed (taken: asked once).
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Releases everything it reserved: the caller knows none of those operations can reach the
    /// chain (they never left the service, or the chain refused them).
    pub(crate) async fn release(&self) -> Result<(), Error> {
        let reserved: Vec<B256> = std::mem::take(&mut *self.reserved.lock().unwrap_or_else(PoisonError::into_inner));
        for hash in reserved {
            self.service.sponsorship_outcome(&hash.to_string(), None, "released").await?;
        }
        Ok(())
    }
}

impl Paymaster for BudgetedSponsor {
    fn name(&self) -> &str {
        &self.name
    }

    fn stub<'a>(
        &'a self,
        op: &'a UserOperation,
        entry_point: Address,
        chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterStub, valet_client::Error>> {
        Box::pin(async move {
            let sponsor =
                self.service.sponsor.as_ref().ok_or_else(|| valet_client::Error::Config(NO_SPONSOR.into()))?;
            sponsor.stub(op, entry_point, chain_id).await
        })
    }

    fn data<'a>(
        &'a self,
        op: &'a UserOperation,
        _entry_point: Address,
        _chain_id: u64,
    ) -> BoxFuture<'a, Result<PaymasterFields, valet_client::Error>> {
        Box::pin(async move {
            match self.service.sponsor_operation(&self.app, op, Some(&self.execution_id)).await {
                Ok(sponsored) => {
                    self.reserved.lock().unwrap_or_else(PoisonError::into_inner).push(sponsored.user_op_hash);
                    Ok(sponsored.fields)
                }
                Err(Error::Client(e)) => Err(e),
                Err(e) => {
                    let failed = valet_client::Error::Paymaster {
                        paymaster: self.name.clone(),
                        method: "pm_getPaymasterData".into(),
                        code: None,
                        message: e.to_string(),
                        data: None,
                    };
                    *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    Err(failed)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maximum_cost_counts_every_gas_limit_at_the_maximum_fee() {
        let op = UserOperation {
            verification_gas_limit: 100,
            call_gas_limit: 200,
            paymaster_verification_gas_limit: 30,
            paymaster_post_op_gas_limit: 4,
            pre_verification_gas: U256::from(5),
            max_fee_per_gas: 7,
            max_priority_fee_per_gas: 1,
            ..UserOperation::default()
        };
        assert_eq!(max_cost(&op), U256::from(339 * 7));
        let absurd = UserOperation { pre_verification_gas: U256::MAX, ..op };
        assert_eq!(max_cost(&absurd), U256::MAX, "saturates rather than wraps");
    }

    #[test]
    fn the_approval_window_is_read_from_paymaster_data() {
        let mut data = vec![0, 0, 0, 0, 0, 5];
        data.extend_from_slice(&1_800_000_000u64.to_be_bytes()[2..]);
        data.extend_from_slice(&[0xaa; 65]);
        assert_eq!(approval_valid_until(&data), Some(1_800_000_000));
        assert_eq!(approval_valid_until(&data[..11]), None);
    }

    #[test]
    fn amounts_read_in_wei_and_ether() {
        assert_eq!(wei(U256::from(1_230_000_000_000_000u64)), "1230000000000000 wei (0.00123 ETH)");
        assert!(wei(U256::MAX).ends_with(" wei"));
    }
}
