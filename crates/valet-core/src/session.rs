//! The session model and its packed on-chain encoding (`SessionLib.sol`, `docs/encoding.md` §1).

use alloy_primitives::{Address, B256, Bytes, FixedBytes, keccak256};

use crate::Error;

/// Bytes of the fixed session header, up to and including the paymaster count.
pub const HEADER_LENGTH: usize = 58;
/// Bytes of one paymaster.
pub const PAYMASTER_LENGTH: usize = 20;
/// Bytes of one limit.
pub const LIMIT_LENGTH: usize = 43;
/// Bytes of a permission before its rules.
pub const PERMISSION_HEADER_LENGTH: usize = 43;
/// Bytes of a rule before its values.
pub const RULE_HEADER_LENGTH: usize = 3;
/// Most paymasters a session lists.
pub const MAX_PAYMASTERS: usize = 8;
/// Most limits in a session.
pub const MAX_LIMITS: usize = 8;
/// Most permissions in a session.
pub const MAX_PERMISSIONS: usize = 16;
/// Most rules in a permission.
pub const MAX_RULES: usize = 16;
/// Most values of a `ONE_OF` rule.
pub const MAX_ONE_OF_VALUES: usize = 16;
/// Permissions 0..8 may count their uses.
pub const MAX_COUNTED_PERMISSIONS: usize = 9;
/// Longest packed session (its length travels as a uint16).
pub const MAX_SESSION_LENGTH: usize = u16::MAX as usize;

/// The largest fee budget (uint80 wei, about 1.2 million ETH).
pub const MAX_FEE_BUDGET: u128 = (1 << 80) - 1;

const U48_MAX: u64 = (1 << 48) - 1;
const U24_MAX: u32 = (1 << 24) - 1;

/// The ERC-20 functions a token limit counts: `transfer`, `approve`, `increaseAllowance`,
/// `transferFrom`. A permission on a limited token may call only these.
pub const COUNTED_TOKEN_SELECTORS: [[u8; 4]; 4] =
    [[0xa9, 0x05, 0x9c, 0xbb], [0x09, 0x5e, 0xa7, 0xb3], [0x39, 0x50, 0x93, 0x51], [0x23, 0xb8, 0x72, 0xdd]];

/// A condition on one static ABI word of a call's arguments; the codes are the validator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RuleOp {
    /// `x == v0`
    Eq = 0,
    /// `x != v0`
    Ne = 1,
    /// `x > v0`
    Gt = 2,
    /// `x >= v0`
    Gte = 3,
    /// `x < v0`
    Lt = 4,
    /// `x <= v0`
    Lte = 5,
    /// `v0 <= x <= v1`
    InRange = 6,
    /// `x` is one of the values
    OneOf = 7,
    /// `x` is the account's own address (`$account` in specs)
    SelfAccount = 8,
}

impl RuleOp {
    /// The op for a code, if there is one.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Eq,
            1 => Self::Ne,
            2 => Self::Gt,
            3 => Self::Gte,
            4 => Self::Lt,
            5 => Self::Lte,
            6 => Self::InRange,
            7 => Self::OneOf,
            8 => Self::SelfAccount,
            _ => return None,
        })
    }
}

/// A rule: `op` applied to ABI word `arg` (counted after the selector) with `values`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Index of the 32-byte argument word after the 4-byte selector.
    pub arg: u8,
    /// The comparison.
    pub op: RuleOp,
    /// 1 value for EQ..LTE, 2 for IN_RANGE (min, max), 1..16 for ONE_OF, none for SELF.
    pub values: Vec<B256>,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LimitKind {
    /// Native value sent by the calls.
    Native = 0,
    /// An ERC-20's transfers, transferFroms, approvals and allowance increases.
    Erc20 = 1,
    /// The account's ETH committed to network fees: each operation's maximum cost when no
    /// paymaster pays (a fee allowance, usually per period, beside the session's fee budget).
    Fees = 2,
}

/// A cumulative bound, over the whole session (`period == 0`) or refilled every `period` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Native or ERC-20.
    pub kind: LimitKind,
    /// The token (zero for native).
    pub token: Address,
    /// The most that may be spent (per period, if periodic).
    pub amount: u128,
    /// Seconds per period counted from the session's `valid_after`; 0 = whole session (uint48).
    pub period: u64,
}

/// One allowed call shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The contract called.
    pub target: Address,
    /// The function; `0x00000000` allows exactly a plain transfer (empty calldata).
    pub selector: FixedBytes<4>,
    /// The most native value one call may send (0 = none).
    pub value_limit: u128,
    /// Calls allowed in all (uint16; 0 = not counted). Only permissions 0..8 may count.
    pub max_uses: u16,
    /// Conditions on the arguments; all must pass.
    pub rules: Vec<Rule>,
}

/// A session: what a session key may do for an account, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    /// The key that signs the session's operations.
    pub session_key: Address,
    /// First valid second (uint48, inclusive; at least 1).
    pub valid_after: u64,
    /// Last valid second (uint48, inclusive; after `valid_after`).
    pub valid_until: u64,
    /// The account's epoch when granted (it changes, unpredictably, on every revoke-all).
    pub epoch: u64,
    /// Distinguishes otherwise identical sessions.
    pub salt: u32,
    /// Operations allowed in all (uint24; 0 = not counted).
    pub max_uses: u32,
    /// The most of the account's ETH (wei, uint80) the session's operations may commit to
    /// network fees, counted at each operation's maximum cost; 0 = none: every operation must
    /// be paid by a paymaster.
    pub fee_budget: u128,
    /// The only paymasters an operation may name (any, if empty).
    pub paymasters: Vec<Address>,
    /// Cumulative limits.
    pub limits: Vec<Limit>,
    /// Allowed calls (1..16).
    pub permissions: Vec<Permission>,
}

impl Session {
    /// The packed encoding the validator reads, after checking every field fits and the result
    /// is what the validator accepts.
    pub fn encode(&self) -> Result<Bytes, Error> {
        fits("valid_after", self.valid_after.into(), U48_MAX.into())?;
        fits("valid_until", self.valid_until.into(), U48_MAX.into())?;
        fits("max_uses", self.max_uses.into(), U24_MAX.into())?;
        fits("fee_budget", self.fee_budget, MAX_FEE_BUDGET)?;
        fits("paymaster count", self.paymasters.len() as u128, MAX_PAYMASTERS as u128)?;
        fits("limit count", self.limits.len() as u128, MAX_LIMITS as u128)?;
        fits("permission count", self.permissions.len() as u128, MAX_PERMISSIONS as u128)?;
        let mut out = Vec::with_capacity(HEADER_LENGTH + 2 + 64 * self.permissions.len());
        out.extend_from_slice(self.session_key.as_slice());
        out.extend_from_slice(&self.valid_after.to_be_bytes()[2..]);
        out.extend_from_slice(&self.valid_until.to_be_bytes()[2..]);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.salt.to_be_bytes());
        out.extend_from_slice(&self.max_uses.to_be_bytes()[1..]);
        out.extend_from_slice(&self.fee_budget.to_be_bytes()[6..]);
        out.push(self.paymasters.len() as u8);
        for paymaster in &self.paymasters {
            out.extend_from_slice(paymaster.as_slice());
        }
        out.push(self.limits.len() as u8);
        for limit in &self.limits {
            fits("limit period", limit.period.into(), U48_MAX.into())?;
            out.push(limit.kind as u8);
            out.extend_from_slice(limit.token.as_slice());
            out.extend_from_slice(&limit.amount.to_be_bytes());
            out.extend_from_slice(&limit.period.to_be_bytes()[2..]);
        }
        out.push(self.permissions.len() as u8);
        for p in &self.permissions {
            fits("rule count", p.rules.len() as u128, MAX_RULES as u128)?;
            out.extend_from_slice(p.target.as_slice());
            out.extend_from_slice(p.selector.as_slice());
            out.extend_from_slice(&p.value_limit.to_be_bytes());
            out.extend_from_slice(&p.max_uses.to_be_bytes());
            out.push(p.rules.len() as u8);
            for r in &p.rules {
                fits("rule value count", r.values.len() as u128, MAX_ONE_OF_VALUES as u128)?;
                out.push(r.arg);
                out.push(r.op as u8);
                out.push(r.values.len() as u8);
                for v in &r.values {
                    out.extend_from_slice(v.as_slice());
                }
            }
        }
        check_encoding(&out)?;
        Ok(out.into())
    }

    /// The session id: `keccak256` of the packed encoding.
    pub fn id(&self) -> Result<B256, Error> {
        Ok(keccak256(self.encode()?))
    }

    /// Reads a packed session, refusing exactly what the validator refuses.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        check_encoding(bytes)?;
        let mut r = Reader { bytes, at: 0 };
        let session_key = r.address();
        let valid_after = r.uint(6) as u64;
        let valid_until = r.uint(6) as u64;
        let epoch = r.uint(8) as u64;
        let salt = r.uint(4) as u32;
        let max_uses = r.uint(3) as u32;
        let fee_budget = r.uint(10);
        let paymaster_count = r.uint(1) as usize;
        let paymasters = (0..paymaster_count).map(|_| r.address()).collect();
        let limit_count = r.uint(1) as usize;
        let mut limits = Vec::with_capacity(limit_count);
        for _ in 0..limit_count {
            let kind = match r.uint(1) {
                0 => LimitKind::Native,
                1 => LimitKind::Erc20,
                _ => LimitKind::Fees,
            };
            let token = r.address();
            let amount = r.uint(16);
            let period = r.uint(6) as u64;
            limits.push(Limit { kind, token, amount, period });
        }
        let permission_count = r.uint(1) as usize;
        let mut permissions = Vec::with_capacity(permission_count);
        for _ in 0..permission_count {
            let target = r.address();
            let selector = FixedBytes::from_slice(r.take(4));
            let value_limit = r.uint(16);
            let max_uses = r.uint(2) as u16;
            let rule_count = r.uint(1) as usize;
            let mut rules = Vec::with_capacity(rule_count);
            for _ in 0..rule_count {
                let arg = r.uint(1) as u8;
                let op = RuleOp::from_code(r.uint(1) as u8)
                    .ok_or(Error::MalformedSession { offset: r.at - 1, reason: "unknown rule op" })?;
                let n = r.uint(1) as usize;
                let values = (0..n).map(|_| B256::from_slice(r.take(32))).collect();
                rules.push(Rule { arg, op, values });
            }
            permissions.push(Permission { target, selector, value_limit, max_uses, rules });
        }
        Ok(Self {
            session_key,
            valid_after,
            valid_until,
            epoch,
            salt,
            max_uses,
            fee_budget,
            paymasters,
            limits,
            permissions,
        })
    }
}

fn fits(field: &'static str, value: u128, max: u128) -> Result<(), Error> {
    if value > max { Err(Error::OutOfRange { field, value, max }) } else { Ok(()) }
}

/// Reads fields of a session whose encoding was checked (so no read runs past the end).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        s
    }

    fn uint(&mut self, n: usize) -> u128 {
        self.take(n).iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
    }

    fn address(&mut self) -> Address {
        Address::from_slice(self.take(20))
    }
}

fn be(bytes: &[u8], at: usize, n: usize) -> u128 {
    bytes[at..at + n].iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

fn malformed(offset: usize, reason: &'static str) -> Error {
    Error::MalformedSession { offset, reason }
}

/// The validator's `SessionLib.checkEncoding`: the same checks, in the same order, with the
/// same offsets and reasons.
pub fn check_encoding(s: &[u8]) -> Result<(), Error> {
    let len = s.len();
    if len < HEADER_LENGTH {
        return Err(malformed(len, "shorter than the header"));
    }
    if len > MAX_SESSION_LENGTH {
        return Err(malformed(len, "longer than 65535 bytes"));
    }
    if s[0..20].iter().all(|b| *b == 0) {
        return Err(malformed(0, "session key is zero"));
    }
    if be(s, 20, 6) == 0 {
        return Err(malformed(20, "validAfter is zero"));
    }
    if be(s, 26, 6) <= be(s, 20, 6) {
        return Err(malformed(26, "validUntil is not after validAfter"));
    }
    let paymasters = s[57] as usize;
    if paymasters > MAX_PAYMASTERS {
        return Err(malformed(57, "more than 8 paymasters"));
    }
    let mut o = HEADER_LENGTH;
    if len < o + paymasters * PAYMASTER_LENGTH + 2 {
        return Err(malformed(o, "paymasters cut short"));
    }
    for _ in 0..paymasters {
        if s[o..o + 20].iter().all(|b| *b == 0) {
            return Err(malformed(o, "paymaster is zero"));
        }
        o += PAYMASTER_LENGTH;
    }
    let limit_base = o;
    let limits = s[o] as usize;
    if limits > MAX_LIMITS {
        return Err(malformed(o, "more than 8 limits"));
    }
    o += 1;
    for _ in 0..limits {
        if len < o + LIMIT_LENGTH + 1 {
            return Err(malformed(o, "limit cut short"));
        }
        let token_is_zero = s[o + 1..o + 21].iter().all(|b| *b == 0);
        match s[o] {
            1 if token_is_zero => return Err(malformed(o + 1, "ERC-20 limit without a token")),
            0 | 2 if !token_is_zero => return Err(malformed(o + 1, "native or fee limit names a token")),
            0..=2 => {}
            _ => return Err(malformed(o, "unknown limit kind")),
        }
        o += LIMIT_LENGTH;
    }
    let limited_tokens: Vec<&[u8]> = (0..limits)
        .map(|l| limit_base + 1 + l * LIMIT_LENGTH)
        .filter(|&at| s[at] == LimitKind::Erc20 as u8)
        .map(|at| &s[at + 1..at + 21])
        .collect();
    let permissions = s[o] as usize;
    if permissions == 0 || permissions > MAX_PERMISSIONS {
        return Err(malformed(o, "not 1..16 permissions"));
    }
    o += 1;
    for k in 0..permissions {
        if len < o + PERMISSION_HEADER_LENGTH {
            return Err(malformed(o, "permission cut short"));
        }
        if s[o..o + 20].iter().all(|b| *b == 0) {
            return Err(malformed(o, "permission target is zero"));
        }
        let selector: [u8; 4] = [s[o + 20], s[o + 21], s[o + 22], s[o + 23]];
        if !COUNTED_TOKEN_SELECTORS.contains(&selector) && limited_tokens.contains(&&s[o..o + 20]) {
            return Err(malformed(o + 20, "function on a limited token that its limit does not count"));
        }
        if k >= MAX_COUNTED_PERMISSIONS && be(s, o + 40, 2) != 0 {
            return Err(malformed(o + 40, "only permissions 0..8 may have maxUses"));
        }
        let rules = s[o + 42] as usize;
        if rules > MAX_RULES {
            return Err(malformed(o + 42, "more than 16 rules"));
        }
        o += PERMISSION_HEADER_LENGTH;
        for _ in 0..rules {
            if len < o + RULE_HEADER_LENGTH {
                return Err(malformed(o, "rule cut short"));
            }
            let op = s[o + 1];
            let n = s[o + 2] as usize;
            if op > RuleOp::SelfAccount as u8 {
                return Err(malformed(o + 1, "unknown rule op"));
            }
            if op == RuleOp::SelfAccount as u8 {
                if n != 0 {
                    return Err(malformed(o + 2, "SELF takes no values"));
                }
            } else if op == RuleOp::InRange as u8 {
                if n != 2 {
                    return Err(malformed(o + 2, "IN_RANGE needs 2 values"));
                }
            } else if op == RuleOp::OneOf as u8 {
                if n == 0 || n > MAX_ONE_OF_VALUES {
                    return Err(malformed(o + 2, "ONE_OF needs 1..16 values"));
                }
            } else if n != 1 {
                return Err(malformed(o + 2, "rule needs exactly 1 value"));
            }
            if len < o + RULE_HEADER_LENGTH + 32 * n {
                return Err(malformed(o, "rule values cut short"));
            }
            if op == RuleOp::InRange as u8 && s[o + 3..o + 35] > s[o + 35..o + 67] {
                return Err(malformed(o + 3, "IN_RANGE minimum above maximum"));
            }
            o += RULE_HEADER_LENGTH + 32 * n;
        }
    }
    if o != len {
        return Err(malformed(o, "trailing bytes"));
    }
    Ok(())
}
