//! The sponsorship tables: each app's daily budget, and the ledger of the operations the
//! service's paymaster approved for it (see `migrations/*/0005_sponsorship.sql`).
//!
//! Amounts are wei, stored as decimal text (a budget may exceed 64 bits) and summed here.
//! Reservations are made one at a time per app: the transaction that checks an app's budget
//! starts by writing its budget row, which PostgreSQL locks until commit and SQLite only lets one
//! writer do at a time, so two reservations can never both count on the same remainder.

use alloy::primitives::U256;
use sqlx::Row;

use super::{Vault, db, now};
use crate::Error;

/// Seconds in a (UTC) day.
pub const DAY: i64 = 86_400;

/// The UTC day `unix` seconds fall on, counted from 1970-01-01 (day 0).
pub fn utc_day(unix: i64) -> i64 {
    unix.div_euclid(DAY)
}

/// One operation in the sponsorship ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SponsoredRow {
    /// Its userOpHash (0x…).
    pub user_op_hash: String,
    /// The app whose budget it counts against.
    pub app_id: String,
    /// The UTC day it was approved on ([`utc_day`]).
    pub day: i64,
    /// `execution` (an operation the service built) or `erc7677` (approved through
    /// `pm_getPaymasterData`).
    pub source: String,
    /// The service's execution, for `execution`.
    pub execution_id: Option<String>,
    /// The account.
    pub sender: String,
    /// The most it can cost, in wei (reserved while it is `reserved`).
    pub max_cost: U256,
    /// What it cost, once `spent`.
    pub actual_cost: Option<U256>,
    /// `reserved` (its maximum cost held), `spent` (on chain: its actual cost counts),
    /// `released` (it never reached the chain) or `expired` (its approval ran out unused).
    pub state: String,
    /// The approval's validUntil (chain time, unix seconds): never included after it.
    pub valid_until: i64,
    /// The transaction that included it, once `spent`.
    pub transaction_hash: Option<String>,
}

impl SponsoredRow {
    /// What it counts against its day's budget: its maximum cost while reserved, its actual cost
    /// once spent, nothing otherwise.
    pub fn counted(&self) -> U256 {
        match self.state.as_str() {
            "reserved" => self.max_cost,
            "spent" => self.actual_cost.unwrap_or(self.max_cost),
            _ => U256::ZERO,
        }
    }
}

/// An app's sponsorship on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// The daily budget, if the app has one.
    pub budget: Option<U256>,
    /// Actual costs of the day's operations on chain.
    pub spent: U256,
    /// Maximum costs of the day's operations not settled yet.
    pub reserved: U256,
}

impl Usage {
    /// What is left of the day's budget (none without one).
    pub fn left(&self) -> U256 {
        self.budget.unwrap_or_default().saturating_sub(self.spent.saturating_add(self.reserved))
    }
}

/// A reservation to make: an approved operation's maximum cost against its app's budget today.
#[derive(Debug, Clone, Copy)]
pub struct NewReservation<'a> {
    /// The app.
    pub app: &'a str,
    /// The UTC day ([`utc_day`]).
    pub day: i64,
    /// The approved operation's userOpHash.
    pub user_op_hash: &'a str,
    /// `execution` or `erc7677`.
    pub source: &'a str,
    /// The service's execution, for `execution`.
    pub execution_id: Option<&'a str>,
    /// The account.
    pub sender: &'a str,
    /// Its maximum cost, in wei.
    pub max_cost: U256,
    /// The approval's validUntil.
    pub valid_until: i64,
}

/// What became of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: the day's budget covers it.
    Reserved,
    /// This very operation was reserved before (the same approval asked for twice): nothing more
    /// is counted.
    AlreadyReserved,
    /// The app has no budget.
    NoBudget,
    /// The day's budget does not cover it: nothing was reserved.
    Exceeded {
        /// The daily budget.
        budget: U256,
        /// What the day's operations count already.
        used: U256,
    },
}

fn wei(text: &str, what: &str) -> Result<U256, Error> {
    U256::from_str_radix(text, 10).map_err(|_| Error::Database(format!("stored {what} `{text}` is not a wei amount")))
}

const SPONSORED_COLUMNS: &str = "user_op_hash, app_id, day, source, execution_id, sender, max_cost_wei, \
                                 actual_cost_wei, state, valid_until, transaction_hash";

fn sponsored_row(r: &sqlx::any::AnyRow) -> Result<SponsoredRow, Error> {
    let max_cost: String = r.try_get("max_cost_wei").map_err(db)?;
    let actual_cost: Option<String> = r.try_get("actual_cost_wei").map_err(db)?;
    Ok(SponsoredRow {
        user_op_hash: r.try_get("user_op_hash").map_err(db)?,
        app_id: r.try_get("app_id").map_err(db)?,
        day: r.try_get("day").map_err(db)?,
        source: r.try_get("source").map_err(db)?,
        execution_id: r.try_get("execution_id").map_err(db)?,
        sender: r.try_get("sender").map_err(db)?,
        max_cost: wei(&max_cost, "maximum cost")?,
        actual_cost: actual_cost.as_deref().map(|a| wei(a, "actual cost")).transpose()?,
        state: r.try_get("state").map_err(db)?,
        valid_until: r.try_get("valid_until").map_err(db)?,
        transaction_hash: r.try_get("transaction_hash").map_err(db)?,
    })
}

/// The budget of `app` and what its operations of `day` count, read through `conn`.
async fn usage_in(conn: &mut sqlx::AnyConnection, app: &str, day: i64) -> Result<Usage, Error> {
    let budget = sqlx::query("SELECT daily_budget_wei FROM sponsorship_budgets WHERE app_id = $1")
        .bind(app)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .map(|r| r.try_get::<String, _>("daily_budget_wei").map_err(db))
        .transpose()?
        .map(|b| wei(&b, "daily budget"))
        .transpose()?;
    let rows = sqlx::query(&format!(
        "SELECT {SPONSORED_COLUMNS} FROM sponsored_operations \
         WHERE app_id = $1 AND day = $2 AND state IN ('reserved', 'spent')"
    ))
    .bind(app)
    .bind(day)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut usage = Usage { budget, ..Usage::default() };
    for row in rows.iter().map(sponsored_row) {
        let row = row?;
        match row.state.as_str() {
            "reserved" => usage.reserved = usage.reserved.saturating_add(row.counted()),
            _ => usage.spent = usage.spent.saturating_add(row.counted()),
        }
    }
    Ok(usage)
}

impl Vault {
    /// Whether app `id` exists.
    pub async fn app_exists(&self, id: &str) -> Result<bool, Error> {
        Ok(self.app_name(id).await?.is_some())
    }

    /// App `id`'s name, if there is such an app.
    pub async fn app_name(&self, id: &str) -> Result<Option<String>, Error> {
        let row = sqlx::query("SELECT name FROM apps WHERE id = $1").bind(id).fetch_optional(&self.pool).await;
        row.map_err(db)?.map(|r| r.try_get("name").map_err(db)).transpose()
    }

    /// Sets app `app`'s daily sponsorship budget (`None` or zero: no sponsorship). False if there
    /// is no such app.
    pub async fn set_sponsorship_budget(&self, app: &str, budget: Option<U256>) -> Result<bool, Error> {
        if !self.app_exists(app).await? {
            return Ok(false);
        }
        match budget.filter(|b| !b.is_zero()) {
            None => {
                sqlx::query("DELETE FROM sponsorship_budgets WHERE app_id = $1")
                    .bind(app)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            }
            Some(budget) => {
                sqlx::query(
                    "INSERT INTO sponsorship_budgets (app_id, daily_budget_wei, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (app_id) DO UPDATE SET daily_budget_wei = $2, updated_at = $3",
                )
                .bind(app)
                .bind(budget.to_string())
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            }
        }
        Ok(true)
    }

    /// App `app`'s daily sponsorship budget, if it has one.
    pub async fn sponsorship_budget(&self, app: &str) -> Result<Option<U256>, Error> {
        let row = sqlx::query("SELECT daily_budget_wei FROM sponsorship_budgets WHERE app_id = $1")
            .bind(app)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| wei(&r.try_get::<String, _>("daily_budget_wei").map_err(db)?, "daily budget")).transpose()
    }

    /// App `app`'s budget and what its operations of `day` count.
    pub async fn sponsorship_usage(&self, app: &str, day: i64) -> Result<Usage, Error> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        usage_in(&mut conn, app, day).await
    }

    /// Reserves an approved operation's maximum cost against its app's budget of the day, if what
    /// is left covers it; atomically: reservations of one app are made one at a time, the first
    /// statement of each writing the app's budget row (locked until commit in PostgreSQL; one
    /// writer at a time in SQLite).
    pub async fn reserve_sponsorship(&self, r: &NewReservation<'_>) -> Result<Reservation, Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The lock: a write to the app's budget row, first thing in the transaction.
        let locked = sqlx::query("UPDATE sponsorship_budgets SET updated_at = updated_at WHERE app_id = $1")
            .bind(r.app)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if locked.rows_affected() == 0 {
            return Ok(Reservation::NoBudget);
        }
        let known = sqlx::query("SELECT state FROM sponsored_operations WHERE user_op_hash = $1")
            .bind(r.user_op_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        // Asked for again (the same approval, within the same second): counted once. A released
        // one is reserved again, as it may now be sent.
        let known: Option<String> = known.map(|r| r.try_get("state").map_err(db)).transpose()?;
        if matches!(known.as_deref(), Some("reserved" | "spent")) {
            return Ok(Reservation::AlreadyReserved);
        }
        let usage = usage_in(&mut tx, r.app, r.day).await?;
        let Some(budget) = usage.budget else { return Ok(Reservation::NoBudget) };
        let used = usage.spent.saturating_add(usage.reserved);
        if used.saturating_add(r.max_cost) > budget {
            return Ok(Reservation::Exceeded { budget, used });
        }
        let at = now();
        if known.is_some() {
            sqlx::query(
                "UPDATE sponsored_operations SET state = 'reserved', day = $1, max_cost_wei = $2, updated_at = $3 \
                 WHERE user_op_hash = $4",
            )
            .bind(r.day)
            .bind(r.max_cost.to_string())
            .bind(at)
            .bind(r.user_op_hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Ok(Reservation::Reserved);
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO sponsored_operations ({SPONSORED_COLUMNS}, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 'reserved', $8, NULL, $9, $9) \
             ON CONFLICT (user_op_hash) DO NOTHING"
        ))
        .bind(r.user_op_hash)
        .bind(r.app)
        .bind(r.day)
        .bind(r.source)
        .bind(r.execution_id)
        .bind(r.sender)
        .bind(r.max_cost.to_string())
        .bind(r.valid_until)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(if inserted.rows_affected() == 1 { Reservation::Reserved } else { Reservation::AlreadyReserved })
    }

    /// Records that operation `user_op_hash` is on chain, costing `actual_cost`: it counts that
    /// from now on, whatever it was recorded as before (the chain has the last word). False if
    /// the ledger does not hold it.
    pub async fn sponsorship_spent(
        &self,
        user_op_hash: &str,
        actual_cost: U256,
        transaction_hash: Option<&str>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE sponsored_operations SET state = 'spent', actual_cost_wei = $1, \
             transaction_hash = COALESCE($2, transaction_hash), updated_at = $3 WHERE user_op_hash = $4",
        )
        .bind(actual_cost.to_string())
        .bind(transaction_hash)
        .bind(now())
        .bind(user_op_hash)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends the reservation of operation `user_op_hash` as `state` (`released`: it never reached
    /// the chain; `expired`: its approval ran out): it counts nothing from now on. False if it
    /// was not reserved.
    pub async fn end_sponsorship(&self, user_op_hash: &str, state: &str) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE sponsored_operations SET state = $1, updated_at = $2 WHERE user_op_hash = $3 AND state = 'reserved'",
        )
        .bind(state)
        .bind(now())
        .bind(user_op_hash)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Operation `user_op_hash` in the ledger, if the service approved it.
    pub async fn sponsored_operation(&self, user_op_hash: &str) -> Result<Option<SponsoredRow>, Error> {
        let row = sqlx::query(&format!("SELECT {SPONSORED_COLUMNS} FROM sponsored_operations WHERE user_op_hash = $1"))
            .bind(user_op_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(sponsored_row).transpose()
    }

    /// App `app`'s operations approved on `day`, oldest first.
    pub async fn sponsored_operations(&self, app: &str, day: i64) -> Result<Vec<SponsoredRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {SPONSORED_COLUMNS} FROM sponsored_operations WHERE app_id = $1 AND day = $2 \
             ORDER BY created_at, user_op_hash"
        ))
        .bind(app)
        .bind(day)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(sponsored_row).collect()
    }

    /// What reconciliation still looks for on chain, with the status of each one's execution (if
    /// the service built it): every reservation, and every released operation whose approval
    /// is still usable at `now` (once signed, an operation may be sent by anyone).
    pub async fn sponsorships_open(&self, now: i64) -> Result<Vec<(SponsoredRow, Option<String>)>, Error> {
        let columns: Vec<String> = SPONSORED_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect();
        let rows = sqlx::query(&format!(
            "SELECT {}, e.status AS execution_status FROM sponsored_operations s \
             LEFT JOIN executions e ON e.id = s.execution_id \
             WHERE s.state = 'reserved' OR (s.state = 'released' AND s.valid_until >= $1) \
             ORDER BY s.created_at",
            columns.join(", ")
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(|r| Ok((sponsored_row(r)?, r.try_get("execution_status").map_err(db)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days_start_at_midnight() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(DAY - 1), 0);
        assert_eq!(utc_day(DAY), 1);
        assert_eq!(utc_day(-1), -1);
    }

    fn temp_db(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("valet-sponsorship-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        format!("sqlite://{}?mode=rwc", dir.join("valet.db").display())
    }

    fn reservation<'a>(app: &'a str, hash: &'a str, max_cost: u64) -> NewReservation<'a> {
        NewReservation {
            app,
            day: 20_000,
            user_op_hash: hash,
            source: "erc7677",
            execution_id: None,
            sender: "0x0000000000000000000000000000000000000001",
            max_cost: U256::from(max_cost),
            valid_until: 1_800_000_000,
        }
    }

    /// Reservations count their maximum cost until settled; spent ones their actual cost;
    /// released or expired ones nothing; another day's nothing today; a budget too small refuses.
    #[tokio::test]
    async fn the_ledger_counts_what_the_chain_will_take() {
        let vault = Vault::connect(&temp_db("ledger")).await.expect("vault");
        let (app, _) = vault.create_app("a").await.expect("app");
        let hash = |n: u8| format!("0x{}", alloy::hex::encode([n; 32]));
        assert_eq!(
            vault.reserve_sponsorship(&reservation(&app.id, &hash(1), 10)).await.expect("r"),
            Reservation::NoBudget
        );
        assert!(vault.set_sponsorship_budget(&app.id, Some(U256::from(100))).await.expect("set"));
        assert!(!vault.set_sponsorship_budget("nope", Some(U256::from(100))).await.expect("set"), "no such app");
        let reserve = |n: u8, cost: u64| {
            let vault = vault.clone();
            let (app, hash) = (app.id.clone(), hash(n));
            async move { vault.reserve_sponsorship(&reservation(&app, &hash, cost)).await.expect("reserve") }
        };
        assert_eq!(reserve(1, 60).await, Reservation::Reserved);
        assert_eq!(reserve(1, 60).await, Reservation::AlreadyReserved, "the same approval counts once");
        assert_eq!(reserve(2, 41).await, Reservation::Exceeded { budget: U256::from(100), used: U256::from(60) });
        assert_eq!(reserve(2, 40).await, Reservation::Reserved);
        let usage = vault.sponsorship_usage(&app.id, 20_000).await.expect("usage");
        assert_eq!((usage.spent, usage.reserved, usage.left()), (U256::ZERO, U256::from(100), U256::ZERO));
        assert!(vault.sponsorship_spent(&hash(1), U256::from(25), Some("0xabc")).await.expect("spent"));
        assert!(vault.end_sponsorship(&hash(2), "released").await.expect("released"));
        assert_eq!(reserve(2, 40).await, Reservation::Reserved, "a released approval asked for again");
        assert!(vault.end_sponsorship(&hash(2), "released").await.expect("released"));
        assert!(!vault.end_sponsorship(&hash(1), "expired").await.expect("not reserved"), "spent stays spent");
        let usage = vault.sponsorship_usage(&app.id, 20_000).await.expect("usage");
        assert_eq!((usage.spent, usage.reserved, usage.left()), (U256::from(25), U256::ZERO, U256::from(75)));
        assert_eq!(vault.sponsorship_usage(&app.id, 20_001).await.expect("usage").left(), U256::from(100));
        // The chain has the last word: a released operation found on chain counts again.
        assert!(vault.sponsorship_spent(&hash(2), U256::from(30), None).await.expect("spent"));
        assert_eq!(vault.sponsorship_usage(&app.id, 20_000).await.expect("usage").spent, U256::from(55));
        assert!(vault.set_sponsorship_budget(&app.id, Some(U256::ZERO)).await.expect("set"));
        assert_eq!(vault.sponsorship_budget(&app.id).await.expect("budget"), None, "zero disables");
    }

    /// Many reservations at once for the last of a budget: exactly as many pass as it covers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_overspend() {
        let vault = Vault::connect(&temp_db("race")).await.expect("vault");
        let (app, _) = vault.create_app("a").await.expect("app");
        vault.set_sponsorship_budget(&app.id, Some(U256::from(350))).await.expect("set");
        let tasks: Vec<_> = (0..16u8)
            .map(|n| {
                let (vault, app) = (vault.clone(), app.id.clone());
                tokio::spawn(async move {
                    let hash = format!("0x{}", alloy::hex::encode([n; 32]));
                    vault.reserve_sponsorship(&reservation(&app, &hash, 100)).await.expect("reserve")
                })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            reserved += usize::from(task.await.expect("task") == Reservation::Reserved);
        }
        assert_eq!(reserved, 3);
        assert_eq!(vault.sponsorship_usage(&app.id, 20_000).await.expect("usage").reserved, U256::from(300));
    }
}
