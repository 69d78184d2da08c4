//! Session specs: sessions written with function signatures and argument names, in TOML or
//! JSON, resolved to the exact on-chain [`Session`]; and the plain-language summary an owner
//! reads before granting.
//!
//! ```toml
//! valid_for = "1h"
//! [[permission]]
//! target   = "ValetNFT"                       # an address, or a name the caller resolves
//! function = "mint(address to, uint256 quantity)"
//! rules    = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
//! max_uses = 10
//! [fees]
//! budget   = "0.01 ether"                     # what the account's ETH may pay in network fees
//! ```
//!
//! Without `[fees]` a session spends none of the account's ETH on fees: a paymaster must pay.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, FixedBytes, U256, keccak256};
use serde::Deserialize;

use crate::Error;
use crate::evaluator::Refusal;
use crate::session::{COUNTED_TOKEN_SELECTORS, Limit, LimitKind, MAX_FEE_BUDGET, Permission, Rule, RuleOp, Session};

/// The shortest allowance period a spec may ask for, in seconds. An operation spending from a
/// periodic allowance names its period and is valid only within it (`docs/encoding.md` §3.3),
/// while it may wait several seconds for a block: a period of a few seconds would end before
/// most operations could be included, and pre-flight, which wants the whole inclusion margin
/// inside one period, would refuse most of them. The validator itself accepts any period.
pub const MIN_PERIOD: u64 = 60;

/// The demo's session: mint on the demo NFT to the account itself, at most 5 per call, 10
/// times, for an hour, with up to 0.01 ETH of the account's ETH for network fees.
pub const DEMO_MINT_SPEC: &str = r#"
valid_for = "1h"
[[permission]]
target   = "ValetNFT"
function = "mint(address to, uint256 quantity)"
rules    = [{ arg = "to", eq = "$account" }, { arg = "quantity", lte = 5 }]
max_uses = 10
[fees]
budget = "0.01 ether"
"#;

/// The demo's recurring payment: ValetToken transfers to one payee, at most 10 tokens a day,
/// for a week, with up to 0.005 ETH a day of the account's ETH for network fees.
pub const DEMO_PAYMENT_SPEC: &str = r#"
valid_for = "7d"
[[permission]]
target   = "ValetToken"
function = "transfer(address to, uint256 amount)"
rules    = [{ arg = "to", eq = "Payee" }]
[[limit]]
token  = "ValetToken"
amount = "10 ether"
period = "1d"
[fees]
per_period = "0.005 ether"
period     = "1d"
"#;

/// The demo's DAO session: votes (for, against or abstain) on the demo DAO, three in all, for a
/// day, with up to 0.005 ETH of the account's ETH for network fees.
pub const DEMO_VOTE_SPEC: &str = r#"
valid_for = "1d"
[[permission]]
target   = "ValetDAO"
function = "castVote(uint256 proposalId, uint8 support)"
rules    = [{ arg = "support", in_range = [0, 2] }]
max_uses = 3
[fees]
budget = "0.005 ether"
"#;

/// A number in a spec: an integer, or a string ("5", "0x10", "1.5 ether", "10 gwei").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    /// A TOML/JSON integer.
    Int(i64),
    /// A string form.
    Text(String),
}

/// A value a rule compares against: a number, a bool or a string (address, name, `$account`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A bool (for `bool` arguments).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text: a number, an address, a name, or `$account`.
    Text(String),
}

/// One rule as written: the argument by name (or index) and exactly one comparison.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Argument name (or its position, "0", "1", …).
    pub arg: String,
    /// `==`
    pub eq: Option<Value>,
    /// `!=`
    pub ne: Option<Value>,
    /// `>`
    pub gt: Option<Value>,
    /// `>=`
    pub gte: Option<Value>,
    /// `<`
    pub lt: Option<Value>,
    /// `<=`
    pub lte: Option<Value>,
    /// `[min, max]`, inclusive.
    pub in_range: Option<[Value; 2]>,
    /// Any of these.
    pub one_of: Option<Vec<Value>>,
}

/// One permission as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSpec {
    /// An address or a name the context knows.
    pub target: String,
    /// `name(type arg, …)`; absent for plain value transfers.
    pub function: Option<String>,
    /// Native value one call may send ("0.1 ether"); none by default.
    pub value_limit: Option<Amount>,
    /// Calls allowed in all (at most 65,535).
    #[serde(default, deserialize_with = "max_uses")]
    pub max_uses: Option<u32>,
    /// Conditions on arguments.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One limit as written: `native = "1 ether"` or `token = "…", amount = …`, optionally `period`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Total native value.
    pub native: Option<Amount>,
    /// An ERC-20 (address or name).
    pub token: Option<String>,
    /// The token amount, in base units or "N ether" (18 decimals).
    pub amount: Option<Amount>,
    /// Refill period ("1d", "12h"); absent = over the whole session.
    pub period: Option<String>,
}

/// How a session's operations pay their network fees, as written: `fees = "sponsored"`, or a
/// table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FeesSpec {
    /// `"sponsored"`: a paymaster pays every operation; none of the account's ETH goes to fees
    /// (what a session without `fees` means too).
    Mode(String),
    /// A budget, an allowance per period, paymasters.
    Rule(FeeRuleSpec),
}

/// The fee rule as a table.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeRuleSpec {
    /// The most of the account's ETH the operations may commit to fees over the whole session
    /// ("0.01 ether"), counted at each operation's maximum cost.
    pub budget: Option<Amount>,
    /// The most per `period` ("0.001 ether"), refilled every period.
    pub per_period: Option<Amount>,
    /// The period of `per_period` ("1d").
    pub period: Option<String>,
    /// Paymasters (addresses or names) that may pay instead; only these, if given.
    pub paymasters: Option<Vec<String>>,
}

/// A session as an app writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// How long from `valid_after` ("90s", "30m", "1h", "7d"), unless `valid_until` is given.
    pub valid_for: Option<String>,
    /// Start (unix seconds); now by default.
    pub valid_after: Option<u64>,
    /// End (unix seconds, inclusive).
    pub valid_until: Option<u64>,
    /// Operations allowed in all.
    #[serde(default, deserialize_with = "max_uses")]
    pub max_uses: Option<u32>,
    /// Distinguishes otherwise identical sessions.
    #[serde(default, deserialize_with = "salt")]
    pub salt: Option<u32>,
    /// The allowed calls.
    #[serde(default, rename = "permission")]
    pub permissions: Vec<PermissionSpec>,
    /// Cumulative limits.
    #[serde(default, rename = "limit")]
    pub limits: Vec<LimitSpec>,
    /// How fees are paid; absent: by a paymaster only.
    pub fees: Option<FeesSpec>,
}

/// What resolving a spec needs from outside: the time, the key, the account's epoch, names.
#[derive(Debug, Clone, Default)]
pub struct SpecContext {
    /// Now (unix seconds).
    pub now: u64,
    /// The session key the session is for.
    pub session_key: Address,
    /// The account's current epoch.
    pub account_epoch: u64,
    /// Names usable for targets and tokens (e.g. the devnet's contracts).
    pub names: BTreeMap<String, Address>,
}

/// A parsed `name(type arg, …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The function name.
    pub name: String,
    /// (canonical type, argument name or "", first ABI word, words, static) per argument.
    pub args: Vec<Arg>,
}

/// One argument of a [`Function`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Canonical ABI type.
    pub ty: String,
    /// Name as written ("" if none).
    pub name: String,
    /// Index of its first head word.
    pub word: usize,
    /// Whether a rule may apply: an elementary static type in one word.
    pub comparable: bool,
}

impl Function {
    /// Parses `name(type arg, …)`, canonicalising types (`uint` → `uint256`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| spec_error(format!("function `{text}`"), reason);
        let text = text.trim();
        let open = text.find('(').ok_or_else(|| bad("expected name(type arg, …)"))?;
        if !text.ends_with(')') {
            return Err(bad("expected name(type arg, …)"));
        }
        let name = text[..open].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("the function name must be an identifier"));
        }
        let inner = &text[open + 1..text.len() - 1];
        if inner.contains('(') {
            return Err(bad("tuple arguments are not supported in specs"));
        }
        let mut args = Vec::new();
        let mut word = 0;
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut tokens = part.split_whitespace();
            let ty = canonical_type(tokens.next().unwrap_or_default()).map_err(|r| bad(&r))?;
            let arg_name = tokens.rfind(|t| *t != "calldata" && *t != "memory").unwrap_or("").to_string();
            let (words, dynamic) = type_words(&ty);
            let comparable = !dynamic && words == 1;
            args.push(Arg { ty, name: arg_name, word, comparable });
            word += if dynamic { 1 } else { words };
        }
        Ok(Self { name: name.to_string(), args })
    }

    /// `name(type,…)`.
    pub fn signature(&self) -> String {
        let types: Vec<&str> = self.args.iter().map(|a| a.ty.as_str()).collect();
        format!("{}({})", self.name, types.join(","))
    }

    /// `name(type arg, …)` with the argument names (parses back to the same function).
    pub fn signature_with_names(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| if a.name.is_empty() { a.ty.clone() } else { format!("{} {}", a.ty, a.name) })
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }

    /// The 4-byte selector.
    pub fn selector(&self) -> FixedBytes<4> {
        FixedBytes::from_slice(&keccak256(self.signature())[..4])
    }

    fn arg(&self, key: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name == key).or_else(|| key.parse::<usize>().ok().and_then(|i| self.args.get(i)))
    }
}

fn canonical_type(ty: &str) -> Result<String, String> {
    if let Some(inner) = ty.strip_suffix("[]") {
        return Ok(format!("{}[]", canonical_type(inner)?));
    }
    if let Some(open) = ty.rfind('[').filter(|_| ty.ends_with(']')) {
        let k: usize = ty[open + 1..ty.len() - 1].parse().map_err(|_| format!("bad array length in `{ty}`"))?;
        return Ok(format!("{}[{k}]", canonical_type(&ty[..open])?));
    }
    let ok = match ty {
        "address" | "bool" | "string" | "bytes" => true,
        "uint" => return Ok("uint256".into()),
        "int" => return Ok("int256".into()),
        _ => {
            let bits = |rest: &str, max: u32, step: u32| {
                rest.parse::<u32>().is_ok_and(|n| n >= step && n <= max && n % step == 0)
            };
            ty.strip_prefix("uint").is_some_and(|r| bits(r, 256, 8))
                || ty.strip_prefix("int").is_some_and(|r| bits(r, 256, 8))
                || ty.strip_prefix("bytes").is_some_and(|r| bits(r, 32, 1))
        }
    };
    if ok { Ok(ty.to_string()) } else { Err(format!("unknown type `{ty}`")) }
}

/// (head words, dynamic) of a canonical type.
fn type_words(ty: &str) -> (usize, bool) {
    if ty == "string" || ty == "bytes" || ty.ends_with("[]") {
        return (1, true);
    }
    if let Some(open) = ty.rfind('[') {
        let k: usize = ty[open + 1..ty.len() - 1].parse().unwrap_or(0);
        let (w, dynamic) = type_words(&ty[..open]);
        return if dynamic { (1, true) } else { (w * k, false) };
    }
    (1, false)
}

/// A count as written (`max_uses`, `salt`): a whole number from 0 to 4,294,967,295 — as a number
/// or as decimal digits in a string. Anything else is refused naming the field and the value,
/// where the parser would say "invalid type: floating point 1e+23, expected u32".
fn count<'de, D: serde::Deserializer<'de>>(d: D, field: &str) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Whole(u64),
        Negative(i64),
        Float(f64),
        Text(String),
    }
    let too_large = |shown: &str| format!("{field} = {shown} is too large: at most {}", u32::MAX);
    let reason = match Option::<Written>::deserialize(d)? {
        None => return Ok(None),
        Some(Written::Whole(n)) => match u32::try_from(n) {
            Ok(n) => return Ok(Some(n)),
            Err(_) => too_large(&n.to_string()),
        },
        Some(Written::Negative(n)) => format!("{field} = {n} is negative: give a whole number from 0"),
        Some(Written::Float(f)) => {
            let shown = if f.abs() >= 1e15 || (f != 0.0 && f.abs() < 1e-6) { format!("{f:e}") } else { format!("{f}") };
            if f.fract() != 0.0 || !f.is_finite() {
                format!("{field} = {shown} is not a whole number")
            } else if f < 0.0 {
                format!("{field} = {shown} is negative: give a whole number from 0")
            } else if f > f64::from(u32::MAX) {
                too_large(&shown)
            } else {
                return Ok(Some(f as u32));
            }
        }
        Some(Written::Text(t)) if !t.trim().is_empty() && t.trim().bytes().all(|b| b.is_ascii_digit()) => {
            match t.trim().parse::<u32>() {
                Ok(n) => return Ok(Some(n)),
                Err(_) => too_large(t.trim()),
            }
        }
        Some(Written::Text(t)) => format!("{field} = `{t}` is not a whole number"),
    };
    Err(serde::de::Error::custom(reason))
}

fn max_uses<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    count(d, "max_uses")
}

fn salt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    count(d, "salt")
}

fn spec_error(at: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Spec { at: at.into(), reason: reason.into() }
}

/// Seconds in a duration: a whole number of at least 1 and one unit — `s`, `m`, `h`, `d` or `w`
/// (seconds, minutes, hours, days, weeks) — with or without a space between: "90s", "30m",
/// "1h", "7d", "2w", "10 m". A bare number ("10") has no unit and is refused (is it seconds,
/// minutes?); so is zero ("0s", no time at all) and anything else ("1.5h", "1h30m", "-1d").
/// The grammar of every duration in a spec (`valid_for`, a limit's `period`, `fees.period`); see
/// `docs/spec.md`.
pub fn parse_duration(text: &str) -> Result<u64, Error> {
    duration(text).map_err(|reason| spec_error("duration", reason))
}

/// [`parse_duration`]'s seconds, or why not in words naming the text as written.
fn duration(text: &str) -> Result<u64, String> {
    const UNITS: &str = "s, m, h, d or w";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("no duration: give a whole number and a unit ({UNITS}), like 30m, 1h or 7d"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{t}` needs a unit: {t}s, {t}m, {t}h, {t}d or {t}w"));
    }
    let unit = t.chars().last().unwrap_or_default();
    let number = t[..t.len() - unit.len_utf8()].trim_end();
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(format!("`{t}` is not a duration: write a whole number and {UNITS}, like 30m, 1h or 7d")),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{t}` is not a duration: write a whole number and {UNITS}, like 30m, 1h or 7d"));
    }
    let n: u64 = number.parse().map_err(|_| format!("`{t}` is too long"))?;
    if n == 0 {
        return Err(format!("`{t}` is no time at all: give at least 1{unit}"));
    }
    n.checked_mul(scale).ok_or_else(|| format!("`{t}` is too long"))
}

/// The seconds of an allowance's `period`, at least [`MIN_PERIOD`].
fn allowance_period(text: &str, at: &str) -> Result<u64, Error> {
    let seconds = duration(text).map_err(|reason| spec_error(at, format!("period: {reason}")))?;
    if seconds < MIN_PERIOD {
        return Err(spec_error(
            at,
            format!(
                "period = `{text}` is {seconds} s, shorter than the shortest allowance period, {MIN_PERIOD} s: an operation \
                 must be included within the period it claims, and may wait several seconds for a block"
            ),
        ));
    }
    Ok(seconds)
}

/// Wei in an amount: an integer, "0x…", or "N ether" / "N gwei" / "N wei" (decimals allowed).
pub fn parse_amount(amount: &Amount, at: &str) -> Result<U256, Error> {
    let text = match amount {
        Amount::Int(n) if *n >= 0 => return Ok(U256::from(*n as u64)),
        Amount::Int(n) => return Err(spec_error(at, format!("{n} is negative"))),
        Amount::Text(t) => t.trim(),
    };
    let (number, decimals) = match text.split_once(' ') {
        Some((n, "ether")) => (n, 18),
        Some((n, "gwei")) => (n, 9),
        Some((n, "wei")) => (n, 0),
        Some((_, unit)) => return Err(spec_error(at, format!("unknown unit `{unit}` (ether, gwei or wei)"))),
        None => (text, 0),
    };
    if number.trim_start().starts_with('-') {
        return Err(spec_error(at, format!("`{text}` is negative")));
    }
    if decimals == 0 {
        return number.parse::<U256>().map_err(|_| spec_error(at, format!("`{text}` is not a number")));
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.len() > decimals || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(spec_error(at, format!("`{text}` has more than {decimals} decimals")));
    }
    let digits = format!("{whole}{frac:0<decimals$}");
    digits.parse::<U256>().map_err(|_| spec_error(at, format!("`{text}` is not a number")))
}

fn address_of(text: &str, ctx: &SpecContext, at: &str) -> Result<Address, Error> {
    if let Some(a) = ctx.names.get(text) {
        return Ok(*a);
    }
    text.parse::<Address>().map_err(|_| {
        let known: Vec<&str> = ctx.names.keys().map(String::as_str).collect();
        let known = if known.is_empty() { "none: give an address".to_string() } else { known.join(", ") };
        spec_error(at, format!("`{text}` is neither an address nor a known name (known: {known})"))
    })
}

fn fits_u128(v: U256, at: &str) -> Result<u128, Error> {
    u128::try_from(v).map_err(|_| spec_error(at, format!("{v} does not fit in 128 bits")))
}

impl SessionSpec {
    /// Parses a TOML spec.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| spec_error("TOML spec", e.to_string()))
    }

    /// Parses a JSON spec. A value that does not fit is refused naming where it is — "permission
    /// 2", "limit 1", "fees" (counted from 1, as people count) — and the field and value, never
    /// a position in a JSON text its writer (a web page) never showed anyone.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| spec_error("JSON spec", e.to_string()))?;
        serde_json::from_value(value.clone()).map_err(|e| {
            let item = |key: &str, what: &str, check: fn(serde_json::Value) -> Option<String>| {
                value.get(key).and_then(serde_json::Value::as_array).and_then(|items| {
                    items
                        .iter()
                        .enumerate()
                        .find_map(|(i, v)| check(v.clone()).map(|e| (format!("{what} {}", i + 1), e)))
                })
            };
            let permission = item("permission", "permission", |v| {
                serde_json::from_value::<PermissionSpec>(v).err().map(|e| e.to_string())
            });
            let limit = item("limit", "limit", |v| serde_json::from_value::<LimitSpec>(v).err().map(|e| e.to_string()));
            let fees = value.get("fees").and_then(|v| serde_json::from_value::<FeesSpec>(v.clone()).err()).map(|_| {
                (
                    "fees".to_string(),
                    "write \"sponsored\", or {\"budget\": \"0.01 ether\"} (budget, per_period with period, paymasters)"
                        .to_string(),
                )
            });
            let (at, reason) = permission.or(limit).or(fees).unwrap_or_else(|| ("spec".into(), e.to_string()));
            spec_error(at, reason)
        })
    }

    /// The exact session this spec means, for `ctx`; refuses anything the validator would,
    /// and rules on arguments it cannot compare (dynamic types, ordering on signed integers).
    pub fn resolve(&self, ctx: &SpecContext) -> Result<Session, Error> {
        let valid_after = self.valid_after.unwrap_or(ctx.now);
        if valid_after == 0 {
            return Err(spec_error(
                "valid_after",
                "0 is not a start time (a window ending at second 0 would read as \"no expiry\"): give unix seconds from 1",
            ));
        }
        let valid_until = match (self.valid_until, &self.valid_for) {
            (Some(_), Some(_)) => return Err(spec_error("session", "give valid_for or valid_until, not both")),
            (Some(until), None) => until,
            // valid_until is inclusive: "1h" from 08:00:00 ends at 08:59:59.
            (None, Some(d)) => valid_after
                .checked_add(duration(d).map_err(|reason| spec_error("valid_for", reason))?)
                .filter(|end| *end <= 1 << 48)
                .ok_or_else(|| {
                    spec_error(
                        "valid_for",
                        format!("`{d}` from {valid_after} ends after the year 8,921,556 (the largest uint48 second)"),
                    )
                })?
                .saturating_sub(1),
            (None, None) => return Err(spec_error("session", "give valid_for (\"1h\") or valid_until")),
        };
        if self.permissions.is_empty() {
            return Err(spec_error("session", "a session needs at least one [[permission]]"));
        }
        let mut limits = Vec::new();
        for (l, spec) in self.limits.iter().enumerate() {
            let at = format!("limit {}", l + 1);
            let period = spec.period.as_deref().map(|p| allowance_period(p, &at)).transpose()?.unwrap_or(0);
            let limit = match (&spec.native, &spec.token, &spec.amount) {
                (Some(native), None, None) => Limit {
                    kind: LimitKind::Native,
                    token: Address::ZERO,
                    amount: fits_u128(parse_amount(native, &at)?, &at)?,
                    period,
                },
                (None, Some(token), Some(amount)) => Limit {
                    kind: LimitKind::Erc20,
                    token: address_of(token, ctx, &at)?,
                    amount: fits_u128(parse_amount(amount, &at)?, &at)?,
                    period,
                },
                _ => return Err(spec_error(at, "give `native = …`, or `token = …` with `amount = …`")),
            };
            limits.push(limit);
        }
        let (fee_budget, paymasters, fee_limit) = self.resolve_fees(ctx)?;
        limits.extend(fee_limit);
        let mut permissions = Vec::new();
        for (k, spec) in self.permissions.iter().enumerate() {
            let at = format!("permission {}", k + 1);
            let permission = resolve_permission(spec, ctx, &at)?;
            check_counted_on_limited_token(&permission, spec, &limits, &at)?;
            permissions.push(permission);
        }
        let session = Session {
            session_key: ctx.session_key,
            valid_after,
            valid_until,
            epoch: ctx.account_epoch,
            salt: self.salt.unwrap_or(0),
            max_uses: self.max_uses.unwrap_or(0),
            fee_budget,
            paymasters,
            limits,
            permissions,
        };
        session.encode()?;
        Ok(session)
    }

    /// The fee budget, the paymaster list and the fee allowance per period, if any.
    fn resolve_fees(&self, ctx: &SpecContext) -> Result<(u128, Vec<Address>, Option<Limit>), Error> {
        let rule = match &self.fees {
            None => return Ok((0, Vec::new(), None)),
            Some(FeesSpec::Mode(mode)) if mode == "sponsored" => return Ok((0, Vec::new(), None)),
            Some(FeesSpec::Mode(other)) => {
                return Err(spec_error(
                    "fees",
                    format!(
                        "`{other}`: write fees = \"sponsored\", or a table with budget, per_period and period, paymasters"
                    ),
                ));
            }
            Some(FeesSpec::Rule(rule)) => rule,
        };
        let at = "fees";
        let amount = |a: &Amount, what: &str| -> Result<u128, Error> {
            let wei = parse_amount(a, &format!("fees.{what}"))?;
            if wei > U256::from(MAX_FEE_BUDGET) {
                return Err(spec_error(
                    at,
                    format!("{what} = {wei} wei is above the most a session may hold ({MAX_FEE_BUDGET} wei)"),
                ));
            }
            Ok(wei.to::<u128>())
        };
        let budget = rule.budget.as_ref().map(|b| amount(b, "budget")).transpose()?;
        let fee_limit = match (&rule.per_period, &rule.period) {
            (Some(per), Some(period)) => {
                let seconds = allowance_period(period, at)?;
                Some(Limit {
                    kind: LimitKind::Fees,
                    token: Address::ZERO,
                    amount: amount(per, "per_period")?,
                    period: seconds,
                })
            }
            (Some(_), None) => return Err(spec_error(at, "per_period needs a period (\"1d\")")),
            (None, Some(_)) => return Err(spec_error(at, "period needs per_period (the amount per period)")),
            (None, None) => None,
        };
        // An allowance per period alone caps nothing else: the budget is then the largest.
        let budget = budget.unwrap_or(if fee_limit.is_some() { MAX_FEE_BUDGET } else { 0 });
        let mut paymasters = Vec::new();
        for (i, name) in rule.paymasters.iter().flatten().enumerate() {
            paymasters.push(address_of(name, ctx, &format!("fees.paymasters[{i}]"))?);
        }
        if budget == 0 && fee_limit.is_none() && rule.paymasters.is_none() {
            return Err(spec_error(
                at,
                "give budget (\"0.01 ether\"), per_period with period, or paymasters; or write fees = \"sponsored\"",
            ));
        }
        Ok((budget, paymasters, fee_limit))
    }
}

/// A permission on the token of an ERC-20 limit may only call what the limit counts: any other
/// function of the token (`burn`, `transferAndCall`, a plain transfer into it, …) could move it
/// uncounted (the validator refuses such sessions too).
fn check_counted_on_limited_token(
    permission: &Permission,
    spec: &PermissionSpec,
    limits: &[Limit],
    at: &str,
) -> Result<(), Error> {
    let limited = limits.iter().any(|l| l.kind == LimitKind::Erc20 && l.token == permission.target);
    if limited && !COUNTED_TOKEN_SELECTORS.contains(&permission.selector.0) {
        let function = spec.function.as_deref().unwrap_or("a plain transfer (no function)");
        return Err(spec_error(
            at,
            format!(
                "{function} on {}: the session limits this token, and the limit counts only transfer, \
                 transferFrom, approve and increaseAllowance; any other function could move it uncounted",
                spec.target
            ),
        ));
    }
    Ok(())
}

fn resolve_permission(spec: &PermissionSpec, ctx: &SpecContext, at: &str) -> Result<Permission, Error> {
    let target = address_of(&spec.target, ctx, at)?;
    let value_limit = match &spec.value_limit {
        Some(a) => {
            let field = format!("{at}: value_limit");
            fits_u128(parse_amount(a, &field)?, &field)?
        }
        None => 0,
    };
    let (selector, function) = match &spec.function {
        Some(text) => {
            let f = Function::parse(text)?;
            (f.selector(), Some(f))
        }
        None => (FixedBytes::ZERO, None),
    };
    let mut rules = Vec::new();
    for (j, r) in spec.rules.iter().enumerate() {
        let at = format!("{at}, rule {}", j + 1);
        let f = function.as_ref().ok_or_else(|| spec_error(&at, "a plain transfer has no arguments to rule on"))?;
        rules.extend(resolve_rule(r, f, &at, ctx)?);
    }
    let max_uses = u16::try_from(spec.max_uses.unwrap_or(0)).map_err(|_| {
        spec_error(
            at,
            format!(
                "max_uses = {} is above 65535, the most calls one permission counts (use the session's max_uses)",
                spec.max_uses.unwrap_or(0)
            ),
        )
    })?;
    Ok(Permission { target, selector, value_limit, max_uses, rules })
}

/// The largest clean word of a type narrower than 256 bits whose clean words are exactly
/// `0..=max` (unsigned integers, addresses, bools); `None` for full words and for the types
/// that are not such a range (signed integers, `bytesN`), whose rules are restricted instead.
fn word_max(ty: &str) -> Option<U256> {
    let bits: usize = match ty {
        "address" => 160,
        "bool" => 1,
        t if t.starts_with("uint") => t[4..].parse().unwrap_or(256),
        _ => return None,
    };
    (bits < 256).then(|| (U256::from(1) << bits) - U256::from(1))
}

/// The rules one written rule becomes. Rules compare whole 32-byte words, but a target may read
/// an argument narrower than a word by truncating it (hand-written assembly, old compilers), so
/// a word with bits beyond the type could pass a rule and mean something else to the target. The
/// compiler therefore only emits rules that refuse such words: on `uintN` (N < 256), `address`
/// and `bool`, `gt`/`gte` become `in_range` up to the type's largest value and `ne` gets a
/// second rule `≤` that value (eq, one_of, lt, lte, in_range with values of the type already
/// refuse them); on `intN` (N < 256) and `bytesN` (N < 32) only eq and one_of are accepted.
fn resolve_rule(r: &RuleSpec, f: &Function, at: &str, ctx: &SpecContext) -> Result<Vec<Rule>, Error> {
    let arg = f.arg(&r.arg).ok_or_else(|| {
        let names: Vec<&str> = f.args.iter().map(|a| a.name.as_str()).collect();
        spec_error(at, format!("`{}` is not an argument of {} (arguments: {})", r.arg, f.signature(), names.join(", ")))
    })?;
    if !arg.comparable {
        return Err(spec_error(
            at,
            format!("argument `{}` has dynamic or multi-word type {}: rules compare one static word", r.arg, arg.ty),
        ));
    }
    let word = u8::try_from(arg.word).map_err(|_| spec_error(at, "argument beyond word 255"))?;
    let signed = arg.ty.starts_with("int");
    let mut given: Vec<(RuleOp, Vec<&Value>)> = Vec::new();
    for (op, v) in [
        (RuleOp::Eq, &r.eq),
        (RuleOp::Ne, &r.ne),
        (RuleOp::Gt, &r.gt),
        (RuleOp::Gte, &r.gte),
        (RuleOp::Lt, &r.lt),
        (RuleOp::Lte, &r.lte),
    ] {
        if let Some(v) = v {
            given.push((op, vec![v]));
        }
    }
    if let Some([lo, hi]) = &r.in_range {
        given.push((RuleOp::InRange, vec![lo, hi]));
    }
    if let Some(values) = &r.one_of {
        given.push((RuleOp::OneOf, values.iter().collect()));
    }
    let [(op, values)] = given.as_slice() else {
        return Err(spec_error(at, "give exactly one of eq, ne, gt, gte, lt, lte, in_range, one_of"));
    };
    if signed && !matches!(op, RuleOp::Eq | RuleOp::Ne | RuleOp::OneOf) {
        return Err(spec_error(
            at,
            format!(
                "`{}` is {}: the validator compares unsigned words, so only eq, ne and one_of apply",
                r.arg, arg.ty
            ),
        ));
    }
    let narrow_signed = signed && arg.ty != "int256";
    let narrow_bytes = arg.ty.starts_with("bytes") && arg.ty != "bytes32";
    if (narrow_signed || narrow_bytes) && !matches!(op, RuleOp::Eq | RuleOp::OneOf) {
        return Err(spec_error(
            at,
            format!(
                "`{}` is {}, narrower than a word: only eq and one_of refuse words with bits beyond the type, \
                 which a target that truncates would read as another value",
                r.arg, arg.ty
            ),
        ));
    }
    if *op == RuleOp::Eq && matches!(values[0], Value::Text(t) if t == "$account") && arg.ty == "address" {
        return Ok(vec![Rule { arg: word, op: RuleOp::SelfAccount, values: vec![] }]);
    }
    let words = values.iter().map(|v| encode_value(v, &arg.ty, ctx, at)).collect::<Result<Vec<_>, _>>()?;
    let Some(max) = word_max(&arg.ty) else {
        return Ok(vec![Rule { arg: word, op: *op, values: words }]);
    };
    let v0 = U256::from_be_bytes(words[0].0);
    let range = |lo: U256| Rule { arg: word, op: RuleOp::InRange, values: vec![B256::from(lo), B256::from(max)] };
    Ok(match op {
        RuleOp::Gt if v0 >= max => {
            return Err(spec_error(at, format!("no {} is greater than {v0}", arg.ty)));
        }
        RuleOp::Gt => vec![range(v0 + U256::from(1))],
        RuleOp::Gte => vec![range(v0)],
        RuleOp::Ne => vec![
            Rule { arg: word, op: RuleOp::Ne, values: words },
            Rule { arg: word, op: RuleOp::Lte, values: vec![B256::from(max)] },
        ],
        _ => vec![Rule { arg: word, op: *op, values: words }],
    })
}

fn encode_value(v: &Value, ty: &str, ctx: &SpecContext, at: &str) -> Result<B256, Error> {
    match (ty, v) {
        ("address", Value::Text(t)) if t == "$account" => {
            Err(spec_error(at, "`$account` is only for eq on an address (use eq = \"$account\")"))
        }
        ("address", Value::Text(t)) => Ok(address_of(t, ctx, at)?.into_word()),
        ("bool", Value::Bool(b)) => Ok(B256::from(U256::from(u8::from(*b)))),
        (t, Value::Int(n)) if t.starts_with("int") => {
            Ok(B256::from(alloy_primitives::I256::try_from(*n).map_err(|e| spec_error(at, e.to_string()))?.into_raw()))
        }
        (t, Value::Text(s)) if t.starts_with("int") => {
            let n: alloy_primitives::I256 =
                s.parse().map_err(|_| spec_error(at, format!("`{s}` is not an integer")))?;
            Ok(B256::from(n.into_raw()))
        }
        (t, v) if t.starts_with("uint") => {
            let amount = match v {
                Value::Int(n) => Amount::Int(*n),
                Value::Text(s) => Amount::Text(s.clone()),
                Value::Bool(_) => return Err(spec_error(at, format!("a bool for a {t} argument"))),
            };
            let x = parse_amount(&amount, at)?;
            let bits: usize = t[4..].parse().unwrap_or(256);
            if bits < 256 && x >> bits != U256::ZERO {
                return Err(spec_error(at, format!("{x} does not fit in {t}")));
            }
            Ok(B256::from(x))
        }
        (t, Value::Text(s)) if t.starts_with("bytes") => {
            let raw = alloy_primitives::hex::decode(s).map_err(|e| spec_error(at, format!("`{s}`: {e}")))?;
            let n: usize = t[5..].parse().unwrap_or(32);
            if raw.len() > n {
                return Err(spec_error(at, format!("`{s}` is longer than {t}")));
            }
            let mut w = [0u8; 32];
            w[..raw.len()].copy_from_slice(&raw);
            Ok(B256::from(w))
        }
        (t, v) => Err(spec_error(at, format!("{v:?} is not a {t} value"))),
    }
}

impl SessionSpec {
    /// The parsed function of each permission (`None` for plain transfers).
    pub fn functions(&self) -> Result<Vec<Option<Function>>, Error> {
        self.permissions.iter().map(|p| p.function.as_deref().map(Function::parse).transpose()).collect()
    }
}

/// Names and token units for summaries.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Display names of addresses (contracts, tokens).
    pub names: BTreeMap<Address, String>,
    /// Symbol and decimals of tokens.
    pub tokens: BTreeMap<Address, (String, u8)>,
}

impl Labels {
    fn address(&self, a: Address) -> String {
        let hex = a.to_checksum(None);
        let short = format!("{}…{}", &hex[..6], &hex[hex.len() - 4..]);
        match self.names.get(&a) {
            Some(name) => format!("{name} ({short})"),
            None => short,
        }
    }

    fn name_or_address(&self, a: Address) -> String {
        match self.tokens.get(&a) {
            Some((symbol, _)) => symbol.clone(),
            None => self.address(a),
        }
    }

    fn token_amount(&self, token: Address, amount: u128) -> String {
        match self.tokens.get(&token) {
            Some((symbol, decimals)) => format!("{} {symbol}", units(amount, *decimals)),
            None => format!("{amount} base units of {}", self.address(token)),
        }
    }
}

/// `amount` with `decimals` decimals, trailing zeros trimmed.
pub fn units(amount: u128, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals.min(38)));
    let whole = amount / scale;
    let frac = amount % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// `YYYY-MM-DD HH:MM UTC` for unix seconds.
pub fn utc(ts: u64) -> String {
    let (date, secs) = civil(ts);
    format!("{date} {:02}:{:02} UTC", secs / 3_600, secs / 60 % 60)
}

/// How long a session may last before [`warnings`] suggests a shorter one: 30 days.
pub const LONG_SESSION: u64 = 30 * 86_400;

/// What an owner should hear about a session before granting it, though nothing in it is
/// refused: today, a session lasting longer than [`LONG_SESSION`] ("this session lasts 273
/// years: consider a shorter one"). Checks that need the chain or contracts' ABIs (a function
/// the target does not have) are the client's (`valet_client::Proposal::warnings`).
pub fn warnings(session: &Session) -> Vec<String> {
    let mut warnings = Vec::new();
    let lasts = session.valid_until.saturating_add(1).saturating_sub(session.valid_after);
    if lasts > LONG_SESSION {
        let (n, unit) = match lasts / 86_400 {
            days if days >= 730 => (lasts / 31_557_600, "years"),
            days => (days, "days"),
        };
        warnings.push(format!("this session lasts {n} {unit}: consider a shorter one"));
    }
    warnings
}

/// `ts` (unix seconds) as "2026-05-01 09:30:15 UTC": for times seconds apart (a short session's
/// end, the moment an operation is judged at), which [`utc`] would print alike.
pub fn utc_seconds(ts: u64) -> String {
    let (date, secs) = civil(ts);
    format!("{date} {:02}:{:02}:{:02} UTC", secs / 3_600, secs / 60 % 60, secs % 60)
}

/// The civil date of `ts` ("2026-05-01") and the seconds into that day.
fn civil(ts: u64) -> (String, u64) {
    let days = (ts / 86_400) as i64;
    let secs = ts % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), secs)
}

fn span(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s % 604_800 == 0 => (s / 604_800, "week"),
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// Whether `rule` is the compiler's guard that a narrow argument holds a value of its type (the
/// second rule of an `ne`, see [`resolve_rule`]); summaries leave it out.
fn is_type_guard(rule: &Rule, arg: Option<&Arg>) -> bool {
    let max = arg.and_then(|a| word_max(&a.ty));
    rule.op == RuleOp::Lte && max.is_some_and(|m| U256::from_be_bytes(rule.values[0].0) == m)
}

fn rule_text(rule: &Rule, arg: Option<&Arg>, labels: &Labels) -> String {
    let name = arg.map(|a| if a.name.is_empty() { format!("argument {}", rule.arg) } else { a.name.clone() });
    let name = name.unwrap_or_else(|| format!("argument {}", rule.arg));
    let value = |w: &B256| match arg.map(|a| a.ty.as_str()) {
        Some("address") => labels.address(Address::from_word(*w)),
        Some("bool") => (!w.is_zero()).to_string(),
        Some(t) if t.starts_with("bytes") => w.to_string(),
        _ => U256::from_be_bytes(w.0).to_string(),
    };
    let values: Vec<String> = rule.values.iter().map(value).collect();
    let type_max = arg.and_then(|a| word_max(&a.ty));
    match rule.op {
        RuleOp::Eq => format!("{name} = {}", values[0]),
        RuleOp::Ne => format!("{name} ≠ {}", values[0]),
        RuleOp::Gt => format!("{name} > {}", values[0]),
        RuleOp::Gte => format!("{name} ≥ {}", values[0]),
        RuleOp::Lt => format!("{name} < {}", values[0]),
        RuleOp::Lte => format!("{name} ≤ {}", values[0]),
        // `gte` on a narrow type, compiled to a range up to the type's largest value.
        RuleOp::InRange if type_max.is_some_and(|m| U256::from_be_bytes(rule.values[1].0) == m) => {
            format!("{name} ≥ {}", values[0])
        }
        RuleOp::InRange => format!("{name} from {} to {}", values[0], values[1]),
        RuleOp::OneOf => format!("{name} is one of {}", values.join(", ")),
        RuleOp::SelfAccount => format!("{name} is this account"),
    }
}

fn eth(wei: u128) -> String {
    format!("{} ETH", units(wei, 18))
}

/// What the summary says of fees: who pays, and how much of the account's ETH it may take.
fn fee_lines(session: &Session, labels: &Labels) -> Vec<String> {
    let allowances: Vec<&crate::session::Limit> = session.limits.iter().filter(|l| l.kind == LimitKind::Fees).collect();
    let listed: Vec<String> = session.paymasters.iter().map(|p| labels.address(*p)).collect();
    if session.fee_budget == 0 {
        let mut line = "Network fees are paid by a sponsor (a paymaster), never from your ETH".to_string();
        if !listed.is_empty() {
            line += &format!("; only {} may pay", listed.join(" or "));
        }
        return vec![line + "."];
    }
    let whole = (session.fee_budget != crate::session::MAX_FEE_BUDGET || allowances.is_empty())
        .then(|| eth(session.fee_budget));
    let periodic: Vec<String> = allowances
        .iter()
        .map(|l| match l.period {
            0 => format!("{} in all", eth(l.amount)),
            p => format!("{} per {} (it refills)", eth(l.amount), span(p)),
        })
        .collect();
    let line = match (whole, periodic.is_empty()) {
        (Some(total), true) => format!("May spend up to {total} of your ETH on network fees"),
        (Some(total), false) => {
            format!("May spend up to {total} of your ETH on network fees, and at most {}", periodic.join(" and "))
        }
        (None, _) => format!("May spend up to {} of your ETH on network fees", periodic.join(" and ")),
    };
    let mut lines = vec![line + ", counted at each operation's maximum cost."];
    if !listed.is_empty() {
        lines.push(format!("Fees may instead be paid by {}.", listed.join(" or ")));
    }
    lines
}

/// The plain-language summary an owner reads before granting: one line per fact.
pub fn summary(session: &Session, functions: &[Option<Function>], labels: &Labels) -> Vec<String> {
    let mut lines = vec![format!(
        "Valid for {}: from {} until {}.",
        span(session.valid_until + 1 - session.valid_after),
        utc(session.valid_after),
        utc(session.valid_until + 1)
    )];
    for (k, p) in session.permissions.iter().enumerate() {
        let function = functions.get(k).and_then(Option::as_ref);
        let what = match function {
            Some(f) => {
                let args: Vec<&str> = f.args.iter().map(|a| a.name.as_str()).collect();
                format!("call {}({}) on {}", f.name, args.join(", "), labels.address(p.target))
            }
            None if p.selector == FixedBytes::ZERO && p.value_limit != 0 => {
                format!("send ETH to {}", labels.address(p.target))
            }
            None if p.selector == FixedBytes::ZERO => {
                format!("make plain calls (no data, no ETH) to {}", labels.address(p.target))
            }
            None => format!("call function {} on {}", p.selector, labels.address(p.target)),
        };
        let mut line = format!("May {what}");
        if p.max_uses != 0 {
            line += &format!(", at most {} time{}", p.max_uses, if p.max_uses == 1 { "" } else { "s" });
        }
        if p.value_limit != 0 {
            line += &format!(", sending at most {} per call", eth(p.value_limit));
        }
        let conditions: Vec<String> = p
            .rules
            .iter()
            .map(|r| (r, function.and_then(|f| f.args.iter().find(|a| a.word == usize::from(r.arg)))))
            .filter(|(r, arg)| !is_type_guard(r, *arg))
            .map(|(r, arg)| rule_text(r, arg, labels))
            .collect();
        if !conditions.is_empty() {
            line += &format!(", only if {}", conditions.join(" and "));
        }
        lines.push(line + ".");
    }
    for limit in &session.limits {
        let amount = match limit.kind {
            LimitKind::Native => eth(limit.amount),
            LimitKind::Erc20 => labels.token_amount(limit.token, limit.amount),
            LimitKind::Fees => continue,
        };
        let per = match limit.period {
            0 => "in all".to_string(),
            p => format!("per {} (it refills)", span(p)),
        };
        let what = match limit.kind {
            LimitKind::Native => "sent with its calls",
            _ => "transferred or approved",
        };
        lines.push(format!("At most {amount} {per} {what}."));
        let others = session.permissions.iter().any(|p| p.target != limit.token && p.selector != FixedBytes::ZERO);
        if limit.kind == LimitKind::Erc20 && others {
            lines.push(format!(
                "That limit counts {} this session moves itself; it does not see what other contracts take through approvals you gave them.",
                labels.name_or_address(limit.token)
            ));
        }
    }
    if session.max_uses != 0 {
        lines.push(format!("At most {} operations in all.", session.max_uses));
    }
    lines.extend(fee_lines(session, labels));
    if session.permissions.iter().all(|p| p.value_limit == 0) {
        lines.push("Its calls cannot send any of your ETH.".to_string());
    }
    lines.push(
        "Nothing else: no other contract or function, no change to the account, and no signing on its behalf."
            .to_string(),
    );
    lines
}

/// A refusal in the words of the spec the owner approved: function and argument names, the rule
/// as the summary states it, amounts in token units. Refusals without such details read as the
/// evaluator states them.
pub fn explain(refusal: &Refusal, session: &Session, functions: &[Option<Function>], labels: &Labels) -> String {
    let permission_name = |p: usize| {
        let target = session.permissions.get(p).map(|x| labels.address(x.target)).unwrap_or_default();
        match functions.get(p).and_then(Option::as_ref) {
            Some(f) => format!("{} on {target}", f.name),
            None => format!("permission {} on {target}", p + 1),
        }
    };
    match refusal {
        Refusal::RuleViolated { permission, rule, arg, value, .. }
            if session.permissions.get(*permission).and_then(|p| p.rules.get(*rule)).is_some_and(|r| {
                let function = functions.get(*permission).and_then(Option::as_ref);
                let argument = function.and_then(|f| f.args.iter().find(|a| a.word == usize::from(*arg)));
                argument.and_then(|a| word_max(&a.ty)).is_some_and(|m| *value > m)
                    && matches!(r.op, RuleOp::Lte | RuleOp::InRange)
            }) =>
        {
            let function = functions.get(*permission).and_then(Option::as_ref);
            let argument = function.and_then(|f| f.args.iter().find(|a| a.word == usize::from(*arg)));
            let (name, ty) = argument.map(|a| (a.name.clone(), a.ty.clone())).unwrap_or_default();
            format!(
                "{name} = {value:#x} is not a {ty}: the word has bits beyond the type, which the session refuses (a target could read it as another value)"
            )
        }
        Refusal::RuleViolated { call, permission, rule, arg, value, .. } => {
            let function = functions.get(*permission).and_then(Option::as_ref);
            let argument = function.and_then(|f| f.args.iter().find(|a| a.word == usize::from(*arg)));
            let name = argument.map(|a| a.name.clone()).filter(|n| !n.is_empty()).unwrap_or(format!("argument {arg}"));
            let shown = match argument.map(|a| a.ty.as_str()) {
                Some("address") => labels.address(Address::from_word(B256::from(*value))),
                _ => value.to_string(),
            };
            let rule_text =
                session.permissions[*permission].rules.get(*rule).map(|r| self::rule_text(r, argument, labels));
            format!(
                "call {} ({}): {name} = {shown}, but the session requires {}",
                call + 1,
                permission_name(*permission),
                rule_text.unwrap_or_else(|| format!("rule {}", rule + 1))
            )
        }
        Refusal::PermissionUsesExhausted { permission, max_uses, .. } => format!(
            "{} has been called all {max_uses} time{} the session allows; grant a new session for more",
            permission_name(*permission),
            if *max_uses == 1 { "" } else { "s" }
        ),
        Refusal::SessionUsesExhausted { max_uses, .. } => {
            format!("the session has made all {max_uses} operations it allows; grant a new session for more")
        }
        Refusal::PaymasterRequired(_) => "the session may not spend your ETH on network fees: a sponsor (paymaster) \
             must pay for its operations; grant a fee budget to let the account pay"
            .to_string(),
        Refusal::FeeBudgetExceeded { spent, fee, budget } => {
            let fee = u128::try_from(*fee).map(eth).unwrap_or_else(|_| format!("{fee} wei"));
            format!(
                "this operation may cost up to {fee} in network fees, but {} of the session's {} fee budget is already committed; grant a new session or use a paymaster",
                eth(*spent),
                eth(*budget)
            )
        }
        Refusal::PaymasterNotAllowed(paymaster) => {
            let listed: Vec<String> = session.paymasters.iter().map(|p| labels.address(*p)).collect();
            format!("paymaster {} is not one the session allows ({})", labels.address(*paymaster), listed.join(", "))
        }
        Refusal::LimitExceeded { limit, spent, amount, cap } => {
            let l = &session.limits[*limit];
            let show = |v: u128| match l.kind {
                LimitKind::Native | LimitKind::Fees => eth(v),
                LimitKind::Erc20 => labels.token_amount(l.token, v),
            };
            let amount_text = u128::try_from(*amount).map(show).unwrap_or_else(|_| amount.to_string());
            if l.kind == LimitKind::Fees {
                return format!(
                    "this operation may cost up to {amount_text} in network fees, but {} of the {} allowed per {} is already committed this period; it refills at the next period",
                    show(*spent),
                    show(*cap),
                    span(l.period)
                );
            }
            let amount = u128::try_from(*amount).map(show).unwrap_or_else(|_| amount.to_string());
            match l.period {
                0 => format!(
                    "this operation spends {amount}, but {} of the session's {} is already spent",
                    show(*spent),
                    show(*cap)
                ),
                p => format!(
                    "this operation spends {amount}, but {} of the {} allowed per {} is already spent this period; it refills at the next period",
                    show(*spent),
                    show(*cap),
                    span(p)
                ),
            }
        }
        Refusal::NotPermitted { call, target, selector, .. } => {
            let allowed: Vec<String> = session
                .permissions
                .iter()
                .enumerate()
                .map(|(k, p)| match functions.get(k).and_then(Option::as_ref) {
                    Some(f) => format!("{} on {}", f.signature(), labels.address(p.target)),
                    None if p.selector == FixedBytes::ZERO => format!("plain calls to {}", labels.address(p.target)),
                    None => format!("function {} on {}", p.selector, labels.address(p.target)),
                })
                .collect();
            format!(
                "call {} ({} function {selector}) is not one the session allows; it allows {}",
                call + 1,
                labels.address(*target),
                allowed.join("; ")
            )
        }
        Refusal::EpochMismatch { .. } => {
            "all sessions of this account were revoked (or the validator reinstalled) after this one was granted; grant a new one".to_string()
        }
        Refusal::NotInstalled(account) => {
            format!("the session key validator is not installed on account {account}: no session can act for it")
        }
        Refusal::OutsideWindow { valid_after, valid_until, now } if now > valid_until => {
            format!(
                "the session expired at {} for an operation sent now, which may be included as late as {}; grant a \
                 new one",
                utc_seconds(*valid_until + 1),
                utc_seconds(*now)
            )
        }
        // A window that begins after the session does: an allowance period turns before the
        // operation can surely be included in the current one (pre-flight, `valet-client`).
        Refusal::OutsideWindow { valid_after, now, .. } if *valid_after > session.valid_after => {
            format!(
                "the allowance's period turns at {} (it is {}), too soon for this operation to be included in the \
                 current one: send it from then",
                utc(*valid_after),
                utc(*now)
            )
        }
        Refusal::OutsideWindow { valid_after, now, .. } => {
            format!("not valid until {} (it is {})", utc(*valid_after), utc(*now))
        }
        other => other.to_string(),
    }
}

/// An ERC-7715-style permission request (`wallet_requestExecutionPermissions`'s entry:
/// `{chainId, permission: {type, data}, rules: [{type, data}]}`) as the session spec it asks
/// for. Supported: `native-token-periodic`, `native-token-allowance`, `erc20-token-periodic`,
/// `erc20-token-allowance`; rules `expiry` (`{timestamp}`, required: sessions end) and `payee`
/// (`{payee}` or `{addresses: [...]}`; required for native tokens, which Valet only lets a session
/// send to named payees). Streams are refused with the reason.
pub fn from_erc7715(request: &serde_json::Value, chain_id: u64) -> Result<SessionSpec, Error> {
    let field = |v: &serde_json::Value, name: &str, at: &str| -> Result<serde_json::Value, Error> {
        v.get(name).cloned().ok_or_else(|| spec_error(at, format!("missing `{name}`")))
    };
    let text = |v: &serde_json::Value, at: &str| -> Result<String, Error> {
        match v {
            serde_json::Value::String(s) => Ok(s.clone()),
            // A JSON integer above u64 arrives as a float, already rounded: refuse it.
            serde_json::Value::Number(n) if n.is_f64() => Err(spec_error(
                at,
                format!("{n} is not an exact integer in JSON: give large numbers as decimal or 0x strings"),
            )),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            other => Err(spec_error(at, format!("{other} is not a number or string"))),
        }
    };
    if let Some(id) = request.get("chainId") {
        let given = text(id, "chainId")?;
        let parsed = match given.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => given.parse().ok(),
        };
        if parsed != Some(chain_id) {
            return Err(spec_error("chainId", format!("{given} is not this chain ({chain_id})")));
        }
    }
    let permission = field(request, "permission", "request")?;
    let kind = text(&field(&permission, "type", "permission")?, "permission.type")?;
    let data = field(&permission, "data", "permission")?;
    let mut valid_until = None;
    let mut payees: Vec<Value> = Vec::new();
    for (i, rule) in request.get("rules").and_then(|r| r.as_array()).cloned().unwrap_or_default().iter().enumerate() {
        let at = format!("rules[{i}]");
        let rule_type = text(&field(rule, "type", &at)?, &at)?;
        let rule_data = field(rule, "data", &at)?;
        match rule_type.as_str() {
            "expiry" => {
                let ts = text(&field(&rule_data, "timestamp", &at)?, &at)?;
                // The expiry is the first second the permission no longer holds.
                let expiry = ts.parse::<u64>().map_err(|_| spec_error(&at, format!("timestamp `{ts}`")))?;
                valid_until = Some(expiry.saturating_sub(1));
            }
            "payee" => {
                let list = match (rule_data.get("payee"), rule_data.get("addresses")) {
                    (Some(p), _) => vec![p.clone()],
                    (None, Some(serde_json::Value::Array(a))) => a.clone(),
                    _ => return Err(spec_error(&at, "a payee rule needs `payee` or `addresses`")),
                };
                for p in list {
                    payees.push(Value::Text(text(&p, &at)?));
                }
            }
            other => return Err(spec_error(&at, format!("rule type `{other}` is not supported (expiry, payee)"))),
        }
    }
    let valid_until = valid_until.ok_or_else(|| spec_error("rules", "an expiry rule is required: sessions end"))?;
    let payee_rule = |arg: &str| match payees.len() {
        0 => None,
        1 => Some(RuleSpec { arg: arg.into(), eq: Some(payees[0].clone()), ..RuleSpec::default() }),
        _ => Some(RuleSpec { arg: arg.into(), one_of: Some(payees.clone()), ..RuleSpec::default() }),
    };
    let amount = |name: &str| -> Result<Amount, Error> {
        Ok(Amount::Text(text(&field(&data, name, "permission.data")?, name)?))
    };
    let period = |data: &serde_json::Value| -> Result<Option<String>, Error> {
        let d = text(&field(data, "periodDuration", "permission.data")?, "periodDuration")?;
        Ok(Some(format!("{}s", d.parse::<u64>().map_err(|_| spec_error("periodDuration", format!("`{d}` seconds")))?)))
    };
    let valid_after = match data.get("startTime") {
        Some(t) => Some(text(t, "startTime")?.parse::<u64>().map_err(|_| spec_error("startTime", "not unix seconds"))?),
        None => None,
    };
    let (permissions, limits) = match kind.as_str() {
        "native-token-periodic" | "native-token-allowance" => {
            if payees.is_empty() {
                return Err(spec_error(
                    "rules",
                    "a native-token permission needs a payee rule: Valet lets sessions send ETH only to named payees",
                ));
            }
            let (cap, period) = if kind == "native-token-periodic" {
                (amount("periodAmount")?, period(&data)?)
            } else {
                (amount("allowance")?, None)
            };
            let permissions = payees
                .iter()
                .map(|p| PermissionSpec {
                    target: match p {
                        Value::Text(t) => t.clone(),
                        _ => String::new(),
                    },
                    function: None,
                    value_limit: Some(cap.clone()),
                    max_uses: None,
                    rules: Vec::new(),
                })
                .collect();
            (permissions, vec![LimitSpec { native: Some(cap), token: None, amount: None, period }])
        }
        "erc20-token-periodic" | "erc20-token-allowance" => {
            let token = text(&field(&data, "tokenAddress", "permission.data")?, "tokenAddress")?;
            let (cap, period) = if kind == "erc20-token-periodic" {
                (amount("periodAmount")?, period(&data)?)
            } else {
                (amount("allowance")?, None)
            };
            let permission = PermissionSpec {
                target: token.clone(),
                function: Some("transfer(address to, uint256 amount)".into()),
                value_limit: None,
                max_uses: None,
                rules: payee_rule("to").into_iter().collect(),
            };
            (vec![permission], vec![LimitSpec { native: None, token: Some(token), amount: Some(cap), period }])
        }
        s if s.contains("stream") => {
            return Err(spec_error(
                "permission.type",
                format!("`{s}`: streams are not supported; use a periodic allowance"),
            ));
        }
        other => return Err(spec_error("permission.type", format!("`{other}` is not supported"))),
    };
    Ok(SessionSpec {
        valid_for: None,
        valid_after,
        valid_until: Some(valid_until),
        max_uses: None,
        salt: None,
        permissions,
        limits,
        // ERC-7715 has no word for fees: the caller states them, or a paymaster pays.
        fees: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn ctx() -> SpecContext {
        SpecContext { now: NOW, session_key: Address::repeat_byte(0x5e), account_epoch: 0, names: BTreeMap::new() }
    }

    fn resolve(toml: &str) -> Result<Session, Error> {
        SessionSpec::from_toml(toml)?.resolve(&ctx())
    }

    const NATIVE: &str = "valid_for = \"1d\"\n[[permission]]\ntarget = \"0x00000000000000000000000000000000000000fe\"\n\
                          value_limit = \"1 ether\"\n";

    /// An allowance period shorter than [`MIN_PERIOD`] would end before most operations could
    /// be included: refused, in limits, fee rules and ERC-7715 requests alike.
    #[test]
    fn allowance_periods_are_at_least_a_minute() {
        for (period, ok) in [("1s", false), ("59s", false), ("0s", false), ("60s", true), ("1m", true), ("1d", true)] {
            let spec = format!("{NATIVE}[[limit]]\nnative = \"1 ether\"\nperiod = \"{period}\"\n");
            match resolve(&spec) {
                Ok(s) => assert!(ok && s.limits[0].period >= MIN_PERIOD, "{period}"),
                Err(Error::Spec { at, reason }) => {
                    assert!(!ok, "{period}: {reason}");
                    assert_eq!(at, "limit 1", "counted from 1, as people count");
                    let zero = period == "0s" && reason.contains("no time at all");
                    assert!(zero || reason.contains("shorter than the shortest allowance period, 60 s"), "{reason}");
                }
                Err(e) => panic!("{period}: {e}"),
            }
            let fees = format!("{NATIVE}[fees]\nper_period = \"1 gwei\"\nperiod = \"{period}\"\n");
            match resolve(&fees) {
                Ok(s) => assert!(ok && s.limits[0].period >= MIN_PERIOD, "fees {period}"),
                Err(Error::Spec { at, reason }) => {
                    let zero = period == "0s" && reason.contains("no time at all");
                    assert!(!ok && at == "fees" && (zero || reason.contains("60 s")), "fees {period}: {at}: {reason}")
                }
                Err(e) => panic!("fees {period}: {e}"),
            }
        }
        let request = serde_json::json!({
            "chainId": 1,
            "permission": { "type": "native-token-periodic",
                            "data": { "periodAmount": "1 ether", "periodDuration": 10 } },
            "rules": [{ "type": "expiry", "data": { "timestamp": NOW + 86_400 } },
                      { "type": "payee", "data": { "payee": "0x00000000000000000000000000000000000000fe" } }]
        });
        let refused = from_erc7715(&request, 1).and_then(|spec| spec.resolve(&ctx()));
        assert!(matches!(&refused, Err(Error::Spec { reason, .. }) if reason.contains("10 s")), "{refused:?}");
    }

    /// Pre-flight refuses an operation whose allowance period turns before it can be included
    /// with the window of the next period: the owner reads when to send it.
    #[test]
    fn a_period_turning_before_inclusion_is_explained() {
        let session =
            resolve(&format!("{NATIVE}[[limit]]\nnative = \"1 ether\"\nperiod = \"1h\"\n")).expect("resolves");
        let labels = Labels::default();
        let turning = Refusal::OutsideWindow { valid_after: NOW + 3_600, valid_until: NOW + 7_199, now: NOW + 3_590 };
        assert_eq!(
            explain(&turning, &session, &[], &labels),
            "the allowance's period turns at 2027-01-15 09:00 UTC (it is 2027-01-15 08:59 UTC), too soon for this \
             operation to be included in the current one: send it from then"
        );
        let not_yet = Refusal::OutsideWindow { valid_after: NOW, valid_until: NOW + 86_399, now: NOW - 5 };
        assert!(explain(&not_yet, &session, &[], &labels).starts_with("not valid until "));
        let expired = Refusal::OutsideWindow { valid_after: NOW, valid_until: NOW + 86_399, now: NOW + 86_405 };
        assert!(explain(&expired, &session, &[], &labels).starts_with("the session expired at "));
    }
}
