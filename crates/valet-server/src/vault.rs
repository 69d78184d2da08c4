//! The vault: apps, sessions (their keys sealed), executions and the audit log, in SQLite by
//! default or PostgreSQL for several instances — the same queries through sqlx's `Any` driver,
//! with a migration set per backend. The sponsorship tables are in `vault/sponsorship.rs`.

mod sponsorship;

pub use sponsorship::{DAY, NewReservation, Reservation, SponsoredRow, Usage, utc_day};

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::Error;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// A random 128-bit id as hex.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut chacha20poly1305::aead::OsRng, &mut bytes);
    alloy::hex::encode(bytes)
}

/// sha256 as hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    alloy::hex::encode(Sha256::digest(bytes))
}

fn db(e: sqlx::Error) -> Error {
    Error::Database(e.to_string())
}

/// Creates the SQLite database file of `url` readable by its owner only (0600), or narrows an
/// existing one to that, before SQLite opens it: SQLite creates the `-wal` and `-shm` files with
/// the database file's permissions, and the vault holds sealed keys and the audit log.
fn private_sqlite_file(url: &str) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = std::path::Path::new(path);
    let created = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
    created.map_err(|e| Error::Config(format!("database file {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Config(format!("database file {}: {e}", path.display())))
}

/// An app allowed to use the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Session id (0x…).
    pub id: String,
    /// The app that proposed it.
    pub app_id: String,
    /// Chain id.
    pub chain_id: i64,
    /// Validator address.
    pub validator: String,
    /// Account address.
    pub account: String,
    /// Owner address.
    pub owner: String,
    /// Factory salt (decimal).
    pub salt: String,
    /// Session key address.
    pub session_key: String,
    /// Packed session (0x…).
    pub packed: String,
    /// JSON: function signature per permission.
    pub functions: String,
    /// JSON: names used.
    pub names: String,
    /// JSON: summary lines.
    pub summary: String,
    /// Sealed key (hex).
    pub sealed_key: String,
    /// The owner's grant (0x…), once given.
    pub grant_sig: Option<String>,
    /// proposed | active | revoked.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// `smart` (a ValetAccount clone) or `eip7702` (the owner's EOA, delegating to Valet).
    pub account_kind: String,
    /// Of an `eip7702` session: the owner's signed EIP-7702 authorization (JSON, an operation's
    /// `eip7702Auth`), from the grant until an operation of the session used it.
    pub delegation: Option<String>,
    /// Of a multichain grant's session: the grant's id, the multichain digest the owner signs
    /// (0x…), shared by its sessions on every chain; `None` for a single-chain session.
    pub grant_group: Option<String>,
    /// Of a multichain grant's session: where its chain's entry stands in the list signed (0-based).
    pub grant_position: Option<i64>,
}

/// A recorded execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRow {
    /// Its id.
    pub id: String,
    /// The session.
    pub session_id: String,
    /// The Idempotency-Key, if any.
    pub idempotency_key: Option<String>,
    /// sha256 of the request body.
    pub request_hash: String,
    /// pending | unknown | included | reverted | refused | failed.
    pub status: String,
    /// userOpHash, once built.
    pub user_op_hash: Option<String>,
    /// Transaction hash, once included.
    pub transaction_hash: Option<String>,
    /// Gas charged, once included.
    pub gas_used: Option<String>,
    /// JSON detail.
    pub detail: Option<String>,
    /// Unix seconds of its last change (or last check, while unknown).
    pub updated_at: i64,
}

/// An owner's signed revocation the service puts on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    /// The session.
    pub session_id: String,
    /// The app.
    pub app_id: String,
    /// The owner's signature (hex).
    pub signature: String,
    /// pending | included | not_needed | refused.
    pub status: String,
    /// The transaction that revoked it, once included (none when the chain showed it revoked
    /// already, or it was never enabled there).
    pub transaction_hash: Option<String>,
    /// How many times it was sent.
    pub attempts: i64,
    /// Why the last attempt did not land.
    pub last_error: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// Order.
    pub seq: i64,
    /// The account, if any.
    pub account: Option<String>,
    /// The session, if any.
    pub session_id: Option<String>,
    /// What happened.
    pub event: String,
    /// JSON detail.
    pub detail: serde_json::Value,
    /// Unix seconds.
    pub at: i64,
}

/// An audit event to record in the same transaction as the change it describes.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    /// The app.
    pub app: &'a str,
    /// The account, if any.
    pub account: Option<&'a str>,
    /// The session, if any.
    pub session: Option<&'a str>,
    /// What happened.
    pub event: &'a str,
    /// Details.
    pub detail: &'a serde_json::Value,
}

async fn insert_audit(conn: &mut sqlx::AnyConnection, a: &Audit<'_>) -> Result<(), Error> {
    sqlx::query("INSERT INTO audit (app_id, account, session_id, event, detail, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(a.app)
        .bind(a.account)
        .bind(a.session)
        .bind(a.event)
        .bind(a.detail.to_string())
        .bind(now())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Where an execution with an idempotency key stands when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Not used before: go ahead, under this id (nothing is written yet).
    New(String),
    /// The key was used before: this is what happened.
    Existing(ExecutionRow),
}

/// An execution not written yet: what its first write records.
#[derive(Debug, Clone, Copy)]
pub struct NewExecution<'a> {
    /// Its id ([`Begin::New`]).
    pub id: &'a str,
    /// The app.
    pub app: &'a str,
    /// The session.
    pub session: &'a str,
    /// The Idempotency-Key, if any.
    pub key: Option<&'a str>,
    /// sha256 of the request body.
    pub request_hash: &'a str,
}

/// The vault.
#[derive(Debug, Clone)]
pub struct Vault {
    pool: AnyPool,
    postgres: bool,
}

/// Holds a session's lane across instances (PostgreSQL): a transaction holding an advisory lock,
/// released when dropped (rolled back) — also if the instance dies.
pub struct LaneLock {
    _tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

impl std::fmt::Debug for LaneLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaneLock")
    }
}

const SESSION_COLUMNS: &str = "id, app_id, chain_id, validator, account, owner, salt, session_key, packed, functions, \
                               names, summary, sealed_key, grant_sig, status, created_at, account_kind, \
                               delegation, grant_group, grant_position";
const EXECUTION_COLUMNS: &str = "id, session_id, idempotency_key, request_hash, status, user_op_hash, \
                                 transaction_hash, gas_used, detail, updated_at";
const REVOCATION_COLUMNS: &str =
    "session_id, app_id, signature, status, transaction_hash, attempts, last_error, updated_at";

fn revocation_row(r: &sqlx::any::AnyRow) -> Result<RevocationRow, Error> {
    Ok(RevocationRow {
        session_id: r.try_get("session_id").map_err(db)?,
        app_id: r.try_get("app_id").map_err(db)?,
        signature: r.try_get("signature").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        transaction_hash: r.try_get("transaction_hash").map_err(db)?,
        attempts: r.try_get("attempts").map_err(db)?,
        last_error: r.try_get("last_error").map_err(db)?,
        updated_at: r.try_get("updated_at").map_err(db)?,
    })
}

fn session_row(r: &sqlx::any::AnyRow) -> Result<SessionRow, Error> {
    Ok(SessionRow {
        id: r.try_get("id").map_err(db)?,
        app_id: r.try_get("app_id").map_err(db)?,
        chain_id: r.try_get("chain_id").map_err(db)?,
        validator: r.try_get("validator").map_err(db)?,
        account: r.try_get("account").map_err(db)?,
        owner: r.try_get("owner").map_err(db)?,
        salt: r.try_get("salt").map_err(db)?,
        session_key: r.try_get("session_key").map_err(db)?,
        packed: r.try_get("packed").map_err(db)?,
        functions: r.try_get("functions").map_err(db)?,
        names: r.try_get("names").map_err(db)?,
        summary: r.try_get("summary").map_err(db)?,
        sealed_key: r.try_get("sealed_key").map_err(db)?,
        grant_sig: r.try_get("grant_sig").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
        account_kind: r.try_get("account_kind").map_err(db)?,
        delegation: r.try_get("delegation").map_err(db)?,
        grant_group: r.try_get("grant_group").map_err(db)?,
        grant_position: r.try_get("grant_position").map_err(db)?,
    })
}

fn execution_row(r: &sqlx::any::AnyRow) -> Result<ExecutionRow, Error> {
    Ok(ExecutionRow {
        id: r.try_get("id").map_err(db)?,
        session_id: r.try_get("session_id").map_err(db)?,
        idempotency_key: r.try_get("idempotency_key").map_err(db)?,
        request_hash: r.try_get("request_hash").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        user_op_hash: r.try_get("user_op_hash").map_err(db)?,
        transaction_hash: r.try_get("transaction_hash").map_err(db)?,
        gas_used: r.try_get("gas_used").map_err(db)?,
        detail: r.try_get("detail").map_err(db)?,
        updated_at: r.try_get("updated_at").map_err(db)?,
    })
}

impl Vault {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://…`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres:") && !url.starts_with("postgresql:") {
            return Err(Error::Config(format!("database URL `{url}`: expected sqlite://… or postgres://…")));
        }
        if sqlite {
            private_sqlite_file(url)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 32 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // One writer at a time, readers alongside; wait for the lock instead of failing.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| Error::Database(format!("connecting to the database: {e}")))?;
        let migrator = if sqlite { &SQLITE } else { &POSTGRES };
        migrator.run(&pool).await.map_err(|e| Error::Database(format!("migrating: {e}")))?;
        Ok(Self { pool, postgres: !sqlite })
    }

    /// Takes session `id`'s lane among every instance sharing this database (PostgreSQL advisory
    /// lock; with SQLite there is one instance, whose in-process lock suffices).
    pub async fn lane_lock(&self, id: &str) -> Result<LaneLock, Error> {
        if !self.postgres {
            return Ok(LaneLock { _tx: None });
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let key = i64::from_be_bytes(Sha256::digest(id.as_bytes())[..8].try_into().expect("8 bytes"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *tx).await.map_err(db)?;
        Ok(LaneLock { _tx: Some(tx) })
    }

    /// Registers an app; returns it and its API key (shown once, stored hashed).
    pub async fn create_app(&self, name: &str) -> Result<(App, String), Error> {
        let id = random_id();
        let key = format!("valet_{}{}", random_id(), random_id());
        sqlx::query("INSERT INTO apps (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(name)
            .bind(sha256_hex(key.as_bytes()))
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok((App { id, name: name.to_string() }, key))
    }

    /// The app an API key belongs to.
    pub async fn app_by_key(&self, key: &str) -> Result<Option<App>, Error> {
        let row = sqlx::query("SELECT id, name FROM apps WHERE key_hash = $1")
            .bind(sha256_hex(key.as_bytes()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| Ok(App { id: r.try_get("id").map_err(db)?, name: r.try_get("name").map_err(db)? })).transpose()
    }

    /// Stores a proposed session.
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), Error> {
        self.insert_sessions(std::slice::from_ref(s)).await
    }

    /// Stores proposed sessions (a multichain grant's, one per chain): all or none.
    pub async fn insert_sessions(&self, sessions: &[SessionRow]) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for s in sessions {
            sqlx::query(&format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $16)"
            ))
            .bind(&s.id)
            .bind(&s.app_id)
            .bind(s.chain_id)
            .bind(&s.validator)
            .bind(&s.account)
            .bind(&s.owner)
            .bind(&s.salt)
            .bind(&s.session_key)
            .bind(&s.packed)
            .bind(&s.functions)
            .bind(&s.names)
            .bind(&s.summary)
            .bind(&s.sealed_key)
            .bind(&s.grant_sig)
            .bind(&s.status)
            .bind(s.created_at)
            .bind(&s.account_kind)
            .bind(&s.delegation)
            .bind(&s.grant_group)
            .bind(s.grant_position)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// App `app`'s sessions of multichain grant `group`, in the order the owner signs them.
    pub async fn group_sessions(&self, app: &str, group: &str) -> Result<Vec<SessionRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE app_id = $1 AND grant_group = $2 ORDER BY grant_position"
        ))
        .bind(app)
        .bind(group)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(session_row).collect()
    }

    /// Activates a multichain grant's sessions, each `(id, grant)` from `proposed` to `active`
    /// with its own grant, recording `audits` in the same transaction: all or none (false, and
    /// nothing changed, if one of them is no longer proposed).
    pub async fn grant_group(&self, grants: &[(&str, &str)], audits: &[Audit<'_>]) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for (id, grant) in grants {
            let done = sqlx::query(
                "UPDATE sessions SET status = 'active', grant_sig = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'proposed'",
            )
            .bind(*grant)
            .bind(now())
            .bind(*id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                tx.rollback().await.map_err(db)?;
                return Ok(false);
            }
        }
        for audit in audits {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// App `app`'s session `id`.
    pub async fn session(&self, app: &str, id: &str) -> Result<Option<SessionRow>, Error> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE app_id = $1 AND id = $2"))
            .bind(app)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_row).transpose()
    }

    /// App `app`'s sessions, for one account or all.
    pub async fn sessions(&self, app: &str, account: Option<&str>) -> Result<Vec<SessionRow>, Error> {
        let rows = match account {
            Some(a) => sqlx::query(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE app_id = $1 AND account = $2 ORDER BY created_at, id"
            ))
            .bind(app)
            .bind(a)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?,
            None => sqlx::query(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE app_id = $1 ORDER BY created_at, id"
            ))
            .bind(app)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?,
        };
        rows.iter().map(session_row).collect()
    }

    /// Moves a session from `from` to `to` (and stores the grant), recording `audit` in the same
    /// transaction; false (and nothing recorded) if it was not in `from`.
    pub async fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        grant: Option<&str>,
        audit: &Audit<'_>,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut changed = false;
        for state in from {
            let done = sqlx::query(
                "UPDATE sessions SET status = $1, grant_sig = COALESCE($2, grant_sig), updated_at = $3 \
                 WHERE id = $4 AND status = $5",
            )
            .bind(to)
            .bind(grant)
            .bind(now())
            .bind(id)
            .bind(*state)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            changed |= done.rows_affected() == 1;
        }
        if changed {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(changed)
    }

    /// Stores `delegation` (the owner's signed EIP-7702 authorization, JSON) for session `id` while
    /// it waits for its grant; false if it is no longer proposed.
    pub async fn propose_delegation(&self, id: &str, delegation: &str) -> Result<bool, Error> {
        let done =
            sqlx::query("UPDATE sessions SET delegation = $1, updated_at = $2 WHERE id = $3 AND status = 'proposed'")
                .bind(delegation)
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets session `id`'s delegation: an operation used it (the EOA delegates to Valet now),
    /// or it can never be used.
    pub async fn clear_delegation(&self, id: &str) -> Result<(), Error> {
        sqlx::query("UPDATE sessions SET delegation = NULL, updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Starts an execution: a fresh id for it (nothing is written until it is built or refused,
    /// [`Vault::execution_built`], [`Vault::record_unsent`]); with an idempotency key already
    /// used, what happened to it instead. The caller holds the session's lane.
    pub async fn begin_execution(&self, app: &str, key: Option<&str>) -> Result<Begin, Error> {
        if let Some(key) = key {
            let row = sqlx::query(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE app_id = $1 AND idempotency_key = $2"
            ))
            .bind(app)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            if let Some(row) = row {
                return Ok(Begin::Existing(execution_row(&row)?));
            }
        }
        Ok(Begin::New(random_id()))
    }

    /// Records the signed operation (JSON) and its userOpHash before it is submitted: the
    /// execution's first write (or, built again, its operation replaced). False, and nothing
    /// written, if another request took its idempotency key meanwhile (on another session).
    pub async fn execution_built(
        &self,
        new: &NewExecution<'_>,
        user_op_hash: &str,
        operation: &str,
    ) -> Result<bool, Error> {
        let at = now();
        let written = sqlx::query(
            "INSERT INTO executions (id, app_id, session_id, idempotency_key, request_hash, status, user_op_hash, \
             operation, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $8) \
             ON CONFLICT (id) DO UPDATE SET user_op_hash = $6, operation = $7, updated_at = $8",
        )
        .bind(new.id)
        .bind(new.app)
        .bind(new.session)
        .bind(new.key)
        .bind(new.request_hash)
        .bind(user_op_hash)
        .bind(operation)
        .bind(at)
        .execute(&self.pool)
        .await;
        match written {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(db(e)),
        }
    }

    /// Records an execution that ended before anything was built (refused, failed) with its
    /// status and audit event, in one transaction. False, and nothing written, if another
    /// request took its idempotency key meanwhile.
    pub async fn record_unsent(
        &self,
        new: &NewExecution<'_>,
        status: &str,
        detail: &serde_json::Value,
        audit: &Audit<'_>,
    ) -> Result<bool, Error> {
        let at = now();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let written = sqlx::query(
            "INSERT INTO executions (id, app_id, session_id, idempotency_key, request_hash, status, detail, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(new.id)
        .bind(new.app)
        .bind(new.session)
        .bind(new.key)
        .bind(new.request_hash)
        .bind(status)
        .bind(detail.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await;
        match written {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
            Err(e) => return Err(db(e)),
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// Records how an execution ended, and its audit event, in one transaction (a crash leaves
    /// both or neither).
    pub async fn finish_execution(
        &self,
        id: &str,
        status: &str,
        transaction_hash: Option<&str>,
        gas_used: Option<&str>,
        detail: &serde_json::Value,
        audit: &Audit<'_>,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE executions SET status = $1, transaction_hash = $2, gas_used = $3, detail = $4, updated_at = $5 \
             WHERE id = $6",
        )
        .bind(status)
        .bind(transaction_hash)
        .bind(gas_used)
        .bind(detail.to_string())
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// Forgets an execution that never sent anything (its idempotency key is free again), with
    /// its audit event, in one transaction.
    pub async fn abandon_execution(&self, id: &str, audit: &Audit<'_>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM executions WHERE id = $1 AND status = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// Executions still pending (after a crash: to reconcile with the chain), with their app and
    /// signed operation.
    pub async fn pending_executions(&self) -> Result<Vec<(String, ExecutionRow, Option<String>)>, Error> {
        self.executions_in("pending").await
    }

    /// Executions whose outcome is unknown (sent, or maybe sent, and not found on chain yet), with
    /// their app and signed operation.
    pub async fn unknown_executions(&self) -> Result<Vec<(String, ExecutionRow, Option<String>)>, Error> {
        self.executions_in("unknown").await
    }

    async fn executions_in(&self, status: &str) -> Result<Vec<(String, ExecutionRow, Option<String>)>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT app_id, operation, {EXECUTION_COLUMNS} FROM executions WHERE status = $1 ORDER BY created_at"
        ))
        .bind(status)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| Ok((r.try_get("app_id").map_err(db)?, execution_row(r)?, r.try_get("operation").map_err(db)?)))
            .collect()
    }

    /// One of `app`'s executions, with its signed operation (once built).
    pub async fn execution(&self, app: &str, id: &str) -> Result<Option<(ExecutionRow, Option<String>)>, Error> {
        let row = sqlx::query(&format!(
            "SELECT operation, {EXECUTION_COLUMNS} FROM executions WHERE app_id = $1 AND id = $2"
        ))
        .bind(app)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| Ok((execution_row(&r)?, r.try_get("operation").map_err(db)?))).transpose()
    }

    /// What is still being settled with the chain: executions of unknown outcome, and
    /// revocations not on chain yet (counted, for `/health`).
    pub async fn settling(&self) -> Result<(i64, i64), Error> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM executions WHERE status = 'unknown') AS unknown, \
             (SELECT COUNT(*) FROM revocations WHERE status = 'pending') AS revocations",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok((row.try_get("unknown").map_err(db)?, row.try_get("revocations").map_err(db)?))
    }

    /// How many of a session's executions are pending or unknown: operations that may still land.
    pub async fn executions_in_flight(&self, session: &str) -> Result<i64, Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM executions WHERE session_id = $1 AND status IN ('pending', 'unknown')",
        )
        .bind(session)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        row.try_get("n").map_err(db)
    }

    /// Notes a check of an unknown execution that settled nothing (its detail, and the time).
    pub async fn execution_checked(&self, id: &str, detail: &serde_json::Value) -> Result<(), Error> {
        sqlx::query("UPDATE executions SET detail = $1, updated_at = $2 WHERE id = $3 AND status = 'unknown'")
            .bind(detail.to_string())
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Records (or replaces) the revocation of `session` to put on chain, as `status`.
    pub async fn upsert_revocation(
        &self,
        app: &str,
        session: &str,
        signature: &str,
        status: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO revocations (session_id, app_id, signature, status, attempts, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5) \
             ON CONFLICT (session_id) DO UPDATE SET signature = $3, status = $4, updated_at = $5 \
             WHERE revocations.status <> 'included'",
        )
        .bind(session)
        .bind(app)
        .bind(signature)
        .bind(status)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// The revocation of `session`, if one was asked for.
    pub async fn revocation(&self, session: &str) -> Result<Option<RevocationRow>, Error> {
        let row = sqlx::query(&format!("SELECT {REVOCATION_COLUMNS} FROM revocations WHERE session_id = $1"))
            .bind(session)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(revocation_row).transpose()
    }

    /// Revocations still to land on chain.
    pub async fn pending_revocations(&self) -> Result<Vec<RevocationRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE status = 'pending' ORDER BY updated_at"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(revocation_row).collect()
    }

    /// Records an attempt at `session`'s revocation: its new status, transaction and error.
    pub async fn revocation_attempted(
        &self,
        session: &str,
        status: &str,
        transaction_hash: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE revocations SET status = $1, transaction_hash = COALESCE($2, transaction_hash), \
             last_error = $3, attempts = attempts + 1, updated_at = $4 WHERE session_id = $5",
        )
        .bind(status)
        .bind(transaction_hash)
        .bind(error)
        .bind(now())
        .bind(session)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Appends to the audit log.
    pub async fn audit(
        &self,
        app: &str,
        account: Option<&str>,
        session: Option<&str>,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        insert_audit(&mut conn, &Audit { app, account, session, event, detail }).await
    }

    /// App `app`'s audit log, optionally for one account or session, oldest first.
    pub async fn audit_log(
        &self,
        app: &str,
        account: Option<&str>,
        session: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, Error> {
        let rows = sqlx::query(
            "SELECT seq, account, session_id, event, detail, at FROM audit WHERE app_id = $1 \
             AND ($2 IS NULL OR account = $2) AND ($3 IS NULL OR session_id = $3) ORDER BY seq LIMIT $4",
        )
        .bind(app)
        .bind(account)
        .bind(session)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail").map_err(db)?;
                Ok(AuditRow {
                    seq: r.try_get("seq").map_err(db)?,
                    account: r.try_get("account").map_err(db)?,
                    session_id: r.try_get("session_id").map_err(db)?,
                    event: r.try_get("event").map_err(db)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                    at: r.try_get("at").map_err(db)?,
                })
            })
            .collect()
    }
}

/// A recurring execution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleRow {
    /// Its id.
    pub id: String,
    /// The app.
    pub app_id: String,
    /// The session it runs in.
    pub session_id: String,
    /// JSON: the execute request.
    pub body: String,
    /// Chain time of run 0.
    pub start_at: i64,
    /// Seconds between runs.
    pub every: i64,
    /// Most runs, if bounded.
    pub max_runs: Option<i64>,
    /// The next run to consider.
    pub next_run: i64,
    /// active | done | cancelled.
    pub status: String,
    /// Why it stopped, if it did.
    pub reason: Option<String>,
}

const SCHEDULE_COLUMNS: &str = "id, app_id, session_id, body, start_at, every, max_runs, next_run, status, reason";

fn schedule_row(r: &sqlx::any::AnyRow) -> Result<ScheduleRow, Error> {
    Ok(ScheduleRow {
        id: r.try_get("id").map_err(db)?,
        app_id: r.try_get("app_id").map_err(db)?,
        session_id: r.try_get("session_id").map_err(db)?,
        body: r.try_get("body").map_err(db)?,
        start_at: r.try_get("start_at").map_err(db)?,
        every: r.try_get("every").map_err(db)?,
        max_runs: r.try_get("max_runs").map_err(db)?,
        next_run: r.try_get("next_run").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        reason: r.try_get("reason").map_err(db)?,
    })
}

impl Vault {
    /// Stores a new active schedule.
    pub async fn insert_schedule(&self, s: &ScheduleRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO schedules ({SCHEDULE_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&s.id)
        .bind(&s.app_id)
        .bind(&s.session_id)
        .bind(&s.body)
        .bind(s.start_at)
        .bind(s.every)
        .bind(s.max_runs)
        .bind(s.next_run)
        .bind(&s.status)
        .bind(&s.reason)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// App `app`'s schedules of session `session` (all of them with `None`).
    pub async fn schedules(&self, app: &str, session: Option<&str>) -> Result<Vec<ScheduleRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE app_id = $1 AND ($2 IS NULL OR session_id = $2) \
             ORDER BY created_at, id"
        ))
        .bind(app)
        .bind(session)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(schedule_row).collect()
    }

    /// Every active schedule (for the scheduler).
    pub async fn active_schedules(&self) -> Result<Vec<ScheduleRow>, Error> {
        let rows = sqlx::query(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE status = 'active'"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(schedule_row).collect()
    }

    /// Moves an active schedule on: its next run, and its status (with the reason it stopped).
    /// A schedule no longer active (cancelled meanwhile) is left as it is: false.
    pub async fn update_schedule(
        &self,
        id: &str,
        next_run: i64,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE schedules SET next_run = $1, status = $2, reason = $3 WHERE id = $4 AND status = 'active'",
        )
        .bind(next_run)
        .bind(status)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether schedule `id` is still active.
    pub async fn schedule_active(&self, id: &str) -> Result<bool, Error> {
        let row = sqlx::query("SELECT status FROM schedules WHERE id = $1").bind(id).fetch_optional(&self.pool);
        let status: Option<String> = row.await.map_err(db)?.map(|r| r.try_get("status")).transpose().map_err(db)?;
        Ok(status.as_deref() == Some("active"))
    }

    /// Cancels app `app`'s schedule `id`: its session's id, or `None` if it has none active by
    /// that id.
    pub async fn cancel_schedule(&self, app: &str, id: &str) -> Result<Option<String>, Error> {
        let session =
            sqlx::query("SELECT session_id FROM schedules WHERE app_id = $1 AND id = $2 AND status = 'active'")
                .bind(app)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let Some(session) = session else { return Ok(None) };
        let session: String = session.try_get("session_id").map_err(db)?;
        let done = sqlx::query(
            "UPDATE schedules SET status = 'cancelled', reason = 'cancelled by the app' \
             WHERE app_id = $1 AND id = $2 AND status = 'active'",
        )
        .bind(app)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok((done.rows_affected() == 1).then_some(session))
    }
}
