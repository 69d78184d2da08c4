//! ERC-7562 validation rules, checked on a node: public bundlers drop an operation whose
//! validation breaks them, so an operation that works with [`crate::Direct`] submission may
//! still never reach a chain through a bundler. [`Checker`] traces one signed operation's
//! validation and says which rule it breaks, in which entity, on which opcode, slot or address.
//!
//! # How it traces
//!
//! It runs `debug_traceCall` of `EntryPoint.handleOps([op], beneficiary)` from an EOA, at the
//! pending block, with a JavaScript tracer ([`TRACER`]); anvil answers it (as does geth). The
//! EntryPoint v0.7 validates first and then executes, and it says where one ends: it emits
//! `BeforeExecution()` (a `LOG1` in its own frame) between the two. Before that event, every
//! call the EntryPoint's own frame makes opens a validation phase, attributed to an entity by
//! its callee: the SenderCreator (which calls the factory) to the **factory**, the sender to
//! the **sender** (the account), the paymaster to the **paymaster**. The tracer records, per
//! phase, what the rules look at: environment opcodes, `GAS` not followed by a call, storage and
//! transient-storage accesses (with the contract whose storage it is), calls and `EXTCODE*` with
//! their target (and whether it has code), value and first bytes of input, contract creations,
//! frames that ran out of gas, and the inputs of `KECCAK256` that start with an address (to
//! tell which slots are associated with which address). It stops recording at the event, so
//! nothing of the execution phase is judged. The rules are then applied here, in Rust, with the
//! entities' stakes read from the EntryPoint (`getDepositInfo`, at the same block).
//!
//! Tracing `handleOps` rather than `EntryPointSimulations.simulateValidation` (what bundlers
//! trace) needs nothing but the deployed EntryPoint: no simulation contract placed by a state
//! override. It also means the operation must be valid as a whole right now: a signature,
//! nonce, window or prefund the EntryPoint refuses makes [`Checker::check`] fail with
//! [`Error::ValidationWouldFail`] and the EntryPoint's reason, rather than report rules.
//! Code the EntryPoint runs inside a phase (an entity's `depositTo`, its `receive`) is the
//! EntryPoint's and is not judged, as bundlers do.
//!
//! # The rules it checks
//!
//! As numbered in the ERC-7562 text of the ethereum/ERCs repository (the revision with `OP-070`
//! for transient storage and `OP-080` for balances):
//!
//! - **OP-011**: `ORIGIN`, `GASPRICE`, `BLOCKHASH`, `COINBASE`, `TIMESTAMP`, `NUMBER`,
//!   `PREVRANDAO`, `GASLIMIT`, `BASEFEE`, `BLOBHASH`, `BLOBBASEFEE`, `CREATE`, `INVALID`,
//!   `SELFDESTRUCT` are banned in every phase (the two blob opcodes are not in that text's list,
//!   but are in other revisions of it: they read the environment like the rest).
//! - **OP-012**: `GAS` only when the next instruction is a `*CALL`.
//! - **OP-013** (written `OP-13` in the spec): unassigned opcodes.
//! - **OP-020**: a frame that runs out of gas.
//! - **OP-031**: `CREATE2` only once, in the factory phase, and it must create the sender.
//! - **OP-032** (in later revisions): `CREATE` is allowed to the sender itself when the
//!   operation has a factory.
//! - **OP-041 / OP-042**: `EXTCODE*` and `*CALL` only on addresses with code, the sender excepted
//!   (it has none until the factory deploys it).
//! - **OP-051 .. OP-054**: of the EntryPoint, entities may only read the code size, call
//!   `depositTo` (from the sender or the factory) and send to its fallback (from the sender).
//! - **OP-061**: `CALL` with value only to the EntryPoint.
//! - **OP-062**: of the precompiles, only `0x01..=0x09`.
//! - **OP-070**: `TLOAD`/`TSTORE` follow the storage rules, like `SLOAD`/`SSTORE`.
//! - **OP-080**: `BALANCE` and `SELFBALANCE` only in a staked entity's phase.
//! - **STO-010**: the sender's own storage, always.
//! - **STO-021 / STO-022**: storage associated with the sender (the slot is the sender's
//!   address, or within 128 slots of `keccak256(sender ‖ …)`) in any other contract: when the
//!   sender exists already, or when the operation deploys it through a **staked** factory. An
//!   operation deploying through an unstaked factory whose validation touches such storage (the
//!   validator's counters, for one) is reported here.
//! - **STO-031 / STO-032 / STO-033**: a staked factory or paymaster may also use its own
//!   storage, storage associated with its own address, and read (not write) any other
//!   non-entity contract's storage; an unstaked one may not.
//!
//! An entity is staked when the EntryPoint holds a locked stake of at least
//! [`Checker::min_stake`] (default 1 ether: the spec leaves the value to each chain) with an
//! unstake delay of at least [`Checker::min_unstake_delay`] (default one day, `MIN_UNSTAKE_DELAY`).
//!
//! # What it does not check
//!
//! - **COD-010** (code unchanged between the first and second validation) and every rule about
//!   a mempool or reputation (`STO-040`, `STO-041`, `GREP-*`, `SREP-*`, `EREP-*`, `UREP-*`,
//!   `ALT-*`): they need a mempool and a history, not one trace.
//! - Aggregators (signature aggregation, `EREP-040`): Valet uses none; an aggregator's phase
//!   would be refused as unexpected.
//! - Several operations validated together in one bundle: the checker traces one operation.
//! - RIP-7212's secp256r1 precompile (`0x100`): not on this devnet, so calling it is refused.
//! - `OP-051`'s exact pattern: any `EXTCODESIZE` of the EntryPoint passes, followed by
//!   `ISZERO` or not.
//! - Gas limits of the phases themselves (the EntryPoint enforces its own).
//! - A slot associated with the sender inside an entity's own storage (a paymaster's
//!   `balances[sender]`) is judged as the sender's associated storage (STO-021/022), not as the
//!   entity's own (STO-031), as the reference bundler orders these checks.
//! - Association is learnt from `KECCAK256` inputs of 32 to 4,096 bytes whose first word is the
//!   address, as the EVM computed them in this trace: a slot derived another way (a precomputed
//!   constant, a hash computed outside validation) is not associated, which errs on the side of
//!   reporting a violation.

use std::collections::BTreeMap;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolEvent, SolInterface};
use serde::Deserialize;
use valet_core::{PackedUserOperation, UserOperation};

use crate::Error;
use crate::contracts::entry_point::EntryPoint;

/// The JavaScript tracer run by `debug_traceCall` (geth's tracer interface, which anvil
/// implements). `__BEFORE_EXECUTION__` is replaced by the topic of the EntryPoint's
/// `BeforeExecution()` event. What it records, and why, is in the module's documentation.
pub const TRACER: &str = r#"{
  segs: [], keccak: {}, frames: [], done: false, gas: null, create: null,
  banned: {49: 1, 50: 1, 58: 1, 64: 1, 65: 1, 66: 1, 67: 1, 68: 1, 69: 1, 71: 1, 72: 1, 73: 1, 74: 1, 254: 1, 255: 1},
  unassigned: function (op) {
    return (op >= 0x0c && op <= 0x0f) || op == 0x1e || op == 0x1f || (op >= 0x21 && op <= 0x2f) ||
      (op >= 0x4b && op <= 0x4f) || (op >= 0xa5 && op <= 0xef) || (op >= 0xf6 && op <= 0xf9) || op == 0xfb || op == 0xfc;
  },
  isCall: function (op) { return op == 0xf1 || op == 0xf2 || op == 0xf4 || op == 0xfa; },
  num: function (v) { return parseInt(v.toString(10), 10); },
  mem: function (log, offset, length) {
    var size = log.memory.length();
    if (length <= 0 || offset >= size) { return '0x'; }
    return toHex(log.memory.slice(offset, Math.min(offset + length, size)));
  },
  op: function (s, name, code, here, next) {
    var key = name + code + here;
    var e = s.ops[key];
    if (e === undefined) { e = s.ops[key] = {name: name, code: code, context: here, next: next, count: 0}; }
    e.count++;
  },
  step: function (log, db) {
    if (this.done) { return; }
    var op = log.op.toNumber();
    if (log.getDepth() == 1) {
      if (op == 0xa1 && toHex(toWord(log.stack.peek(2).toString(16))) == '__BEFORE_EXECUTION__') { this.done = true; }
      return;
    }
    var s = this.segs[this.segs.length - 1];
    if (s === undefined) { return; }
    var code = this.frames[this.frames.length - 1];
    if (this.gas !== null) {
      if (!this.isCall(op)) { this.op(s, 'GAS', this.gas[0], this.gas[1], log.op.toString()); }
      this.gas = null;
    }
    if (this.banned[op] === 1 || this.unassigned(op)) {
      this.op(s, log.op.toString(), code, toHex(log.contract.getAddress()), null);
    } else if (op == 0x5a) {
      this.gas = [code, toHex(log.contract.getAddress())];
    } else if (op == 0x54 || op == 0x55 || op == 0x5c || op == 0x5d) {
      var here = toHex(log.contract.getAddress());
      var slot = toHex(toWord(log.stack.peek(0).toString(16)));
      var transient = op == 0x5c || op == 0x5d;
      var key = here + slot + transient;
      var e = s.storage[key];
      if (e === undefined) { e = s.storage[key] = {context: here, slot: slot, transient: transient, read: false, write: false}; }
      if (op == 0x54 || op == 0x5c) { e.read = true; } else { e.write = true; }
    } else if (op == 0x20) {
      var offset = this.num(log.stack.peek(0));
      var length = this.num(log.stack.peek(1));
      if (length >= 32 && length <= 4096 && offset + 32 <= log.memory.length()) {
        var head = toHex(log.memory.slice(offset, offset + 32));
        if (head.substring(2, 26) == '000000000000000000000000') {
          var input = this.mem(log, offset, length);
          while (input.length < 2 + 2 * length) { input += '00'; }
          this.keccak[input] = true;
        }
      }
    } else if (this.isCall(op) || op == 0x3b || op == 0x3c || op == 0x3f) {
      var call = this.isCall(op);
      var target = toAddress(log.stack.peek(call ? 1 : 0).toString(16));
      var valued = op == 0xf1 || op == 0xf2;
      var input = '0x';
      if (call) {
        var at = valued ? 3 : 2;
        input = this.mem(log, this.num(log.stack.peek(at)), Math.min(this.num(log.stack.peek(at + 1)), 36));
      }
      var here = toHex(log.contract.getAddress());
      var value = valued ? '0x' + log.stack.peek(2).toString(16) : '0x0';
      var entry = {op: log.op.toString(), code: code, context: here, target: toHex(target),
        hasCode: db.getCode(target).length > 0, value: value, input: input};
      s.access[JSON.stringify(entry)] = entry;
    } else if (op == 0xf0 || op == 0xf5) {
      this.create = {op: log.op.toString(), code: code, context: toHex(log.contract.getAddress()), to: null};
      s.creates.push(this.create);
    }
  },
  enter: function (frame) {
    var to = toHex(frame.getTo());
    var type = frame.getType();
    if (this.frames.length == 0 && !this.done) {
      this.segs.push({to: to, ops: {}, storage: {}, access: {}, creates: [], oog: []});
    }
    if ((type == 'CREATE' || type == 'CREATE2') && this.create !== null) { this.create.to = to; this.create = null; }
    this.frames.push(to);
  },
  exit: function (result) {
    var code = this.frames.pop();
    var s = this.segs[this.segs.length - 1];
    var error = result.getError();
    if (!this.done && s !== undefined && error && ('' + error).indexOf('out of gas') >= 0) { s.oog.push(code); }
  },
  fault: function (log, db) {},
  result: function (ctx, db) {
    var values = function (m) { var out = []; for (var k in m) { out.push(m[k]); } return out; };
    var segments = [];
    for (var i = 0; i < this.segs.length; i++) {
      var s = this.segs[i];
      segments.push({to: s.to, ops: values(s.ops), storage: values(s.storage), access: values(s.access),
        creates: s.creates, oog: s.oog});
    }
    return {segments: segments, keccak: Object.keys(this.keccak), done: this.done,
      error: ctx.error ? '' + ctx.error : null, output: toHex(ctx.output)};
  }
}"#;

/// Who a validation phase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    /// The factory named by the operation's initCode (its phase deploys the account).
    Factory,
    /// The account (ERC-4337's `sender`): its `validateUserOp`.
    Sender,
    /// The paymaster named by the operation: its `validatePaymasterUserOp`.
    Paymaster,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Factory => "factory",
            Self::Sender => "sender",
            Self::Paymaster => "paymaster",
        })
    }
}

/// An ERC-7562 rule this checker enforces (see the module's documentation for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// OP-011: an opcode that reads the environment (or `CREATE`, `INVALID`, `SELFDESTRUCT`).
    Op011,
    /// OP-012: `GAS` not immediately followed by a `*CALL`.
    Op012,
    /// OP-13: an unassigned opcode.
    Op013,
    /// OP-020: a frame ran out of gas.
    Op020,
    /// OP-031: `CREATE2` outside the factory's one deployment of the sender.
    Op031,
    /// OP-041: `EXTCODE*` or `*CALL` on an address without code (other than the sender).
    Op041,
    /// OP-054: an access to the EntryPoint other than those OP-051 .. OP-053 allow.
    Op054,
    /// OP-061: `CALL` with value to anything but the EntryPoint.
    Op061,
    /// OP-062: a precompile other than `0x01..=0x09`.
    Op062,
    /// OP-080: `BALANCE` or `SELFBALANCE` in an unstaked entity's phase.
    Op080,
    /// STO-022: storage associated with a sender not deployed yet, with an unstaked factory.
    Sto022,
    /// STO-031: an unstaked entity's own storage.
    Sto031,
    /// STO-032: storage associated with an unstaked entity.
    Sto032,
    /// STO-033: storage of another contract, neither the sender's nor associated with it: read
    /// by an unstaked entity, or written by any.
    Sto033,
}

impl Rule {
    /// The rule's id as ERC-7562 numbers it (`OP-13` is spelt `OP-013` here, like the others).
    pub fn id(self) -> &'static str {
        match self {
            Self::Op011 => "OP-011",
            Self::Op012 => "OP-012",
            Self::Op013 => "OP-013",
            Self::Op020 => "OP-020",
            Self::Op031 => "OP-031",
            Self::Op041 => "OP-041",
            Self::Op054 => "OP-054",
            Self::Op061 => "OP-061",
            Self::Op062 => "OP-062",
            Self::Op080 => "OP-080",
            Self::Sto022 => "STO-022",
            Self::Sto031 => "STO-031",
            Self::Sto032 => "STO-032",
            Self::Sto033 => "STO-033",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// What a violation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An opcode, by name (`TIMESTAMP`, `GAS`, `CREATE2`, …).
    Opcode(String),
    /// A storage slot (persistent, or transient with `TLOAD`/`TSTORE`).
    Storage(StorageAccess),
    /// An address called, or whose code was read.
    Address(Address),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Opcode(name) => f.write_str(name),
            Self::Storage(s) => write!(f, "{s}"),
            Self::Address(a) => write!(f, "{a}"),
        }
    }
}

/// One access to one slot of one contract in a phase (reads and writes of it merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccess {
    /// Whose storage.
    pub contract: Address,
    /// The slot.
    pub slot: B256,
    /// Whether the phase wrote it (else it only read it).
    pub write: bool,
    /// Transient storage (`TLOAD`/`TSTORE`), which OP-070 judges like persistent storage.
    pub transient: bool,
}

impl std::fmt::Display for StorageAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.transient { "transient slot" } else { "slot" };
        let how = if self.write { "written" } else { "read" };
        write!(f, "{kind} {} of {} ({how})", self.slot, self.contract)
    }
}

/// A rule broken in an operation's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The phase it happened in.
    pub entity: Entity,
    /// That entity's address (the factory, the sender or the paymaster).
    pub entity_address: Address,
    /// The rule.
    pub rule: Rule,
    /// The contract whose code did it (an implementation behind a proxy is named as itself).
    pub contract: Address,
    /// The opcode, slot or address concerned.
    pub subject: Subject,
    /// What happened and what the rule allows, in words.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {} {}: {}", self.rule, self.entity, self.entity_address, self.message)
    }
}

/// One validation phase as traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Whose phase.
    pub entity: Entity,
    /// The entity's address.
    pub address: Address,
    /// Whether the entity is staked (see [`Checker::min_stake`]).
    pub staked: bool,
    /// Every slot the phase touched, outside the EntryPoint.
    pub storage: Vec<StorageAccess>,
    /// Every address the phase called or read the code of, outside the EntryPoint.
    pub accessed: Vec<Address>,
}

/// What [`Checker::check`] found: the phases traced and the rules they break.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Report {
    /// The validation phases, in the order the EntryPoint ran them.
    pub phases: Vec<Phase>,
    /// The rules broken (none for an operation public bundlers accept).
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether no rule is broken.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The phase of `entity`, if the operation has one.
    pub fn phase(&self, entity: Entity) -> Option<&Phase> {
        self.phases.iter().find(|p| p.entity == entity)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.violations.is_empty() {
            let phases: Vec<String> = self.phases.iter().map(|p| p.entity.to_string()).collect();
            return write!(f, "no ERC-7562 violation ({} traced)", phases.join(", "));
        }
        write!(f, "{} ERC-7562 violation(s):", self.violations.len())?;
        for v in &self.violations {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}

/// The EntryPoint's minimum unstake delay for a staked entity (`MIN_UNSTAKE_DELAY`, one day).
pub const MIN_UNSTAKE_DELAY: u32 = 86_400;

/// Who the tracing call comes from (and who would be paid): an address no entity uses.
const TRACE_FROM: Address = alloy::primitives::address!("0x0000000000000000000000000000000000007562");

/// Checks operations against ERC-7562 by tracing their validation on a node that answers
/// `debug_traceCall` with JavaScript tracers.
#[derive(Debug, Clone)]
#[must_use]
pub struct Checker {
    provider: DynProvider,
    entry_point: Address,
    block: BlockId,
    min_stake: U256,
    min_unstake_delay: u32,
}

impl Checker {
    /// A checker for operations of `entry_point` (v0.7) on `provider`'s chain, at the pending
    /// block, with a minimum stake of 1 ether and a day's unstake delay.
    pub fn new(provider: DynProvider, entry_point: Address) -> Self {
        Self {
            provider,
            entry_point,
            block: BlockId::pending(),
            min_stake: U256::from(10u128.pow(18)),
            min_unstake_delay: MIN_UNSTAKE_DELAY,
        }
    }

    /// The least stake (wei) that makes an entity staked (`MIN_STAKE_VALUE`, set per chain).
    pub fn min_stake(mut self, wei: U256) -> Self {
        self.min_stake = wei;
        self
    }

    /// The least unstake delay (seconds) that makes an entity staked.
    pub fn min_unstake_delay(mut self, seconds: u32) -> Self {
        self.min_unstake_delay = seconds;
        self
    }

    /// The block the operation is validated on (the pending one by default).
    pub fn block(mut self, block: BlockId) -> Self {
        self.block = block;
        self
    }

    /// Traces `op`'s validation and reports the rules it breaks. Fails if the node cannot trace
    /// it, or if the EntryPoint refuses the operation outright ([`Error::ValidationWouldFail`]).
    pub async fn check_user_op(&self, op: &UserOperation) -> Result<Report, Error> {
        self.check(&op.pack()).await
    }

    /// Traces the packed `op`'s validation and reports the rules it breaks (see
    /// [`Checker::check_user_op`]).
    pub async fn check(&self, op: &PackedUserOperation) -> Result<Report, Error> {
        let entities = Entities::of(op);
        let stakes = self.stakes(&entities).await?;
        let trace = self.trace(op).await?;
        if !trace.done {
            return Err(Error::ValidationWouldFail(refusal(&trace)));
        }
        if let Some(error) = &trace.error {
            // Validation ended (the event was emitted); only execution failed, which the rules
            // do not judge.
            tracing::debug!(%error, "handleOps reverted after validation");
        }
        Judge { entities: &entities, entry_point: self.entry_point, stakes, associated: associated(&entities, &trace) }
            .report(&trace)
    }

    /// Whether each entity of the operation is staked, at the checked block.
    async fn stakes(&self, entities: &Entities) -> Result<BTreeMap<Address, bool>, Error> {
        let entry_point = EntryPoint::new(self.entry_point, &self.provider);
        let mut stakes = BTreeMap::new();
        for address in [Some(entities.sender), entities.factory, entities.paymaster].into_iter().flatten() {
            let info = entry_point
                .getDepositInfo(address)
                .block(self.block)
                .call()
                .await
                .map_err(|e| Error::rpc_in(format!("EntryPoint.getDepositInfo({address})"), e))?;
            let staked = info.staked
                && U256::from(info.stake) >= self.min_stake
                && info.unstakeDelaySec >= self.min_unstake_delay;
            stakes.insert(address, staked);
        }
        Ok(stakes)
    }

    async fn trace(&self, op: &PackedUserOperation) -> Result<Trace, Error> {
        let call = EntryPoint::handleOpsCall { ops: vec![op.into()], beneficiary: TRACE_FROM };
        let tx = TransactionRequest::default().from(TRACE_FROM).to(self.entry_point).input(call.abi_encode().into());
        let marker = EntryPoint::BeforeExecution::SIGNATURE_HASH.to_string();
        let options = serde_json::json!({ "tracer": TRACER.replace("__BEFORE_EXECUTION__", &marker) });
        self.provider
            .raw_request::<_, Trace>("debug_traceCall".into(), (tx, self.block, options))
            .await
            .map_err(|e| Error::rpc_in("debug_traceCall with the ERC-7562 tracer", e))
    }
}

/// The EntryPoint's reason for refusing the operation in validation, decoded where it can be.
fn refusal(trace: &Trace) -> String {
    let output = trace.output.clone().unwrap_or_default();
    match EntryPoint::EntryPointErrors::abi_decode(&output) {
        Ok(EntryPoint::EntryPointErrors::FailedOpWithRevert(f)) => {
            let inner = crate::submit::decode_revert(&f.inner).unwrap_or_else(|| f.inner.to_string());
            format!("{} — {inner}", f.reason)
        }
        Ok(EntryPoint::EntryPointErrors::FailedOp(f)) => f.reason,
        _ => format!(
            "handleOps ended before executing ({}; output {output})",
            trace.error.as_deref().unwrap_or("no error")
        ),
    }
}

/// The operation's entities, from its packed fields.
struct Entities {
    sender: Address,
    factory: Option<Address>,
    paymaster: Option<Address>,
}

impl Entities {
    fn of(op: &PackedUserOperation) -> Self {
        let head = |b: &Bytes| (b.len() >= 20).then(|| Address::from_slice(&b[..20]));
        Self { sender: op.sender, factory: head(&op.init_code), paymaster: head(&op.paymaster_and_data) }
    }

    /// Whether `address` is one of the entities.
    fn is_entity(&self, address: Address) -> bool {
        address == self.sender || Some(address) == self.factory || Some(address) == self.paymaster
    }
}

/// What the tracer returns.
#[derive(Debug, Deserialize)]
struct Trace {
    segments: Vec<Segment>,
    keccak: Vec<Bytes>,
    done: bool,
    error: Option<String>,
    output: Option<Bytes>,
}

/// Everything between one call of the EntryPoint's own frame and its return.
#[derive(Debug, Deserialize)]
struct Segment {
    /// What the EntryPoint called.
    to: Address,
    ops: Vec<OpFact>,
    storage: Vec<StorageFact>,
    access: Vec<AccessFact>,
    creates: Vec<CreateFact>,
    /// The code addresses of frames that ran out of gas.
    oog: Vec<Address>,
}

/// An opcode the rules look at (`next`: what followed a `GAS`).
#[derive(Debug, Deserialize)]
struct OpFact {
    name: String,
    code: Address,
    context: Address,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StorageFact {
    context: Address,
    slot: B256,
    transient: bool,
    write: bool,
}

/// A `*CALL` or `EXTCODE*`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessFact {
    op: String,
    code: Address,
    context: Address,
    target: Address,
    has_code: bool,
    value: U256,
    /// The call's first 36 bytes of input (empty for `EXTCODE*`).
    input: Bytes,
}

#[derive(Debug, Deserialize)]
struct CreateFact {
    op: String,
    code: Address,
    context: Address,
    /// The address created, if the creation got that far.
    to: Option<Address>,
}

/// Per entity address, the bases `keccak256(address ‖ …)` the trace computed.
type Associated = BTreeMap<Address, Vec<U256>>;

fn associated(entities: &Entities, trace: &Trace) -> Associated {
    let mut out = Associated::new();
    for input in &trace.keccak {
        for address in [Some(entities.sender), entities.factory, entities.paymaster].into_iter().flatten() {
            if input.len() >= 32 && input[..32] == B256::left_padding_from(address.as_slice())[..] {
                out.entry(address).or_default().push(U256::from_be_bytes(keccak256(input).0));
            }
        }
    }
    out
}

/// How many slots past `keccak256(address ‖ …)` still count as associated (a struct's fields).
const ASSOCIATED_SPAN: u64 = 128;

/// Applies the rules to a trace.
struct Judge<'a> {
    entities: &'a Entities,
    entry_point: Address,
    stakes: BTreeMap<Address, bool>,
    associated: Associated,
}

impl Judge<'_> {
    fn report(&self, trace: &Trace) -> Result<Report, Error> {
        let mut phases = Vec::new();
        let mut violations = Vec::new();
        for segment in &trace.segments {
            let (entity, address) = self.attribute(segment, &phases)?;
            let staked = self.stakes.get(&address).copied().unwrap_or(false);
            let mut phase = PhaseJudge { judge: self, entity, address, staked, violations: Vec::new() };
            phase.segment(segment);
            violations.append(&mut phase.violations);
            phases.push(Phase {
                entity,
                address,
                staked,
                storage: segment
                    .storage
                    .iter()
                    .filter(|s| s.context != self.entry_point)
                    .map(StorageFact::access)
                    .collect(),
                accessed: segment
                    .access
                    .iter()
                    .filter(|a| a.context != self.entry_point && a.code != self.entry_point)
                    .map(|a| a.target)
                    .fold(Vec::new(), |mut seen, a| {
                        if !seen.contains(&a) {
                            seen.push(a);
                        }
                        seen
                    }),
            });
        }
        if !phases.iter().any(|p| p.entity == Entity::Sender) {
            return Err(Error::rpc_message("the trace has no call to the sender's validateUserOp"));
        }
        Ok(Report { phases, violations })
    }

    /// Whose phase a call of the EntryPoint opens: the sender's, the paymaster's, or, before the
    /// sender's when the operation has initCode, the factory's (the call to the SenderCreator).
    fn attribute(&self, segment: &Segment, before: &[Phase]) -> Result<(Entity, Address), Error> {
        let e = self.entities;
        let seen = |entity| before.iter().any(|p: &Phase| p.entity == entity);
        if segment.to == e.sender && !seen(Entity::Sender) {
            return Ok((Entity::Sender, e.sender));
        }
        if Some(segment.to) == e.paymaster && !seen(Entity::Paymaster) {
            return Ok((Entity::Paymaster, segment.to));
        }
        if let Some(factory) = e.factory
            && before.is_empty()
        {
            return Ok((Entity::Factory, factory));
        }
        Err(Error::rpc_message(format!(
            "in validation the EntryPoint called {}, which opens no phase of this operation's entities",
            segment.to
        )))
    }

    /// Whether `slot` is associated with `address`: the slot is the address, or lies within
    /// [`ASSOCIATED_SPAN`] slots of a `keccak256(address ‖ …)` the trace computed.
    fn is_associated(&self, slot: B256, address: Address) -> bool {
        if slot == B256::left_padding_from(address.as_slice()) {
            return true;
        }
        let slot = U256::from_be_bytes(slot.0);
        self.associated
            .get(&address)
            .is_some_and(|bases| bases.iter().any(|base| slot >= *base && slot - *base < U256::from(ASSOCIATED_SPAN)))
    }

    fn staked(&self, address: Option<Address>) -> bool {
        address.is_some_and(|a| self.stakes.get(&a).copied().unwrap_or(false))
    }
}

impl StorageFact {
    fn access(&self) -> StorageAccess {
        StorageAccess { contract: self.context, slot: self.slot, write: self.write, transient: self.transient }
    }
}

/// The precompiles ERC-7562 accepts (OP-062): `0x01..=0x09`.
fn accepted_precompile(address: Address) -> bool {
    let n = U256::from_be_slice(address.as_slice());
    n >= U256::from(1) && n <= U256::from(9)
}

/// Addresses where this chain or others may put precompiles (up to `0x1ff`: Prague's, and
/// RIP-7212's `0x100`).
fn precompile_range(address: Address) -> bool {
    let n = U256::from_be_slice(address.as_slice());
    n >= U256::from(1) && n <= U256::from(0x1ff)
}

/// One phase being judged.
struct PhaseJudge<'a> {
    judge: &'a Judge<'a>,
    entity: Entity,
    address: Address,
    staked: bool,
    violations: Vec<Violation>,
}

impl PhaseJudge<'_> {
    fn flag(&mut self, rule: Rule, contract: Address, subject: Subject, message: String) {
        let entity = self.entity;
        let entity_address = self.address;
        self.violations.push(Violation { entity, entity_address, rule, contract, subject, message });
    }

    /// Code the EntryPoint runs for an entity (`depositTo`, `receive`) is not judged.
    fn in_entry_point(&self, code: Address, context: Address) -> bool {
        code == self.judge.entry_point || context == self.judge.entry_point
    }

    fn segment(&mut self, segment: &Segment) {
        for op in &segment.ops {
            self.opcode(op);
        }
        let mut created_sender = false;
        for create in &segment.creates {
            self.create(create, &mut created_sender);
        }
        for code in &segment.oog {
            let message = format!("a frame running the code of {code} ran out of gas, which leaks the gas limit");
            self.flag(Rule::Op020, *code, Subject::Opcode("OOG".into()), message);
        }
        for access in &segment.access {
            self.access(access);
        }
        for storage in &segment.storage {
            self.storage(storage);
        }
    }

    fn opcode(&mut self, op: &OpFact) {
        if self.in_entry_point(op.code, op.context) {
            return;
        }
        let subject = Subject::Opcode(op.name.clone());
        let at = format!("in the code of {}", op.code);
        match op.name.as_str() {
            "GAS" => {
                let next = op.next.as_deref().unwrap_or("nothing");
                let message = format!("GAS {at} is followed by {next}, not by a *CALL");
                self.flag(Rule::Op012, op.code, subject, message);
            }
            "BALANCE" | "SELFBALANCE" if !self.staked => {
                let message = format!("{} {at}: allowed only in a staked entity's phase", op.name);
                self.flag(Rule::Op080, op.code, subject, message);
            }
            "BALANCE" | "SELFBALANCE" => {}
            name if name.starts_with("opcode") || name.starts_with("UNKNOWN") => {
                let message = format!("unassigned opcode ({name}) {at}");
                self.flag(Rule::Op013, op.code, subject, message);
            }
            name => {
                let message = format!("{name} {at} is banned in validation");
                self.flag(Rule::Op011, op.code, subject, message);
            }
        }
    }

    fn create(&mut self, create: &CreateFact, created_sender: &mut bool) {
        if self.in_entry_point(create.code, create.context) {
            return;
        }
        let e = self.judge.entities;
        let subject = Subject::Opcode(create.op.clone());
        match create.op.as_str() {
            "CREATE2" => {
                if self.entity == Entity::Factory && !*created_sender && create.to == Some(e.sender) {
                    *created_sender = true;
                    return;
                }
                let what = create.to.map_or("an address".to_string(), |a| a.to_string());
                let message = format!(
                    "CREATE2 of {what} by {}: allowed only once, in the factory's phase, to create the sender {}",
                    create.context, e.sender
                );
                self.flag(Rule::Op031, create.code, subject, message);
            }
            _ => {
                // OP-032: the sender itself may CREATE when the operation has a factory.
                if create.context == e.sender && e.factory.is_some() {
                    return;
                }
                let message = format!(
                    "CREATE by {} is banned in validation (only the sender may, and only with a factory)",
                    create.context
                );
                self.flag(Rule::Op011, create.code, subject, message);
            }
        }
    }

    fn access(&mut self, a: &AccessFact) {
        if self.in_entry_point(a.code, a.context) {
            return;
        }
        let e = self.judge.entities;
        let subject = Subject::Address(a.target);
        let is_call = a.op.ends_with("CALL") || a.op == "CALLCODE";
        if a.target == self.judge.entry_point {
            let selector = a.input.get(..4);
            let allowed = match a.op.as_str() {
                // OP-051: checking it has code (before a depositTo).
                "EXTCODESIZE" => true,
                // OP-052: depositTo(sender) from the sender or the factory.
                "CALL" if selector == Some(EntryPoint::depositToCall::SELECTOR.as_slice()) => {
                    (a.context == e.sender || Some(a.context) == e.factory)
                        && a.input.get(4..36) == Some(B256::left_padding_from(e.sender.as_slice()).as_slice())
                }
                // OP-053: the fallback (a plain transfer: the prefund) from the sender.
                "CALL" => a.input.is_empty() && a.context == e.sender,
                _ => false,
            };
            if !allowed {
                let message = format!(
                    "{} of the EntryPoint by {} (input {}): only EXTCODESIZE, depositTo(sender) and the \
                     sender's plain transfers are allowed",
                    a.op, a.context, a.input
                );
                self.flag(Rule::Op054, a.code, subject, message);
            }
            return;
        }
        if is_call && !a.value.is_zero() {
            let message = format!(
                "{} of {} with value {} by {}: only the EntryPoint may be sent value",
                a.op, a.target, a.value, a.context
            );
            self.flag(Rule::Op061, a.code, subject.clone(), message);
        }
        if precompile_range(a.target) && !a.has_code {
            if !accepted_precompile(a.target) {
                let message = format!("{} of {}: only the precompiles 0x01..=0x09 are accepted", a.op, a.target);
                self.flag(Rule::Op062, a.code, subject, message);
            }
            return;
        }
        if !a.has_code && a.target != e.sender {
            let message = format!("{} of {}, which has no code", a.op, a.target);
            self.flag(Rule::Op041, a.code, subject, message);
        }
    }

    fn storage(&mut self, s: &StorageFact) {
        if s.context == self.judge.entry_point {
            return;
        }
        let e = self.judge.entities;
        let access = s.access();
        let subject = Subject::Storage(access.clone());
        // STO-010: the sender's own storage.
        if s.context == e.sender {
            return;
        }
        if self.judge.is_associated(s.slot, e.sender) {
            // STO-021: the sender exists already; STO-022: it is deployed by a staked factory.
            if e.factory.is_none() || self.judge.staked(e.factory) {
                return;
            }
            let factory = e.factory.map(|f| f.to_string()).unwrap_or_default();
            let message = format!(
                "{access}, associated with the sender, which this operation deploys through the \
                 unstaked factory {factory}: allowed only with a staked factory"
            );
            self.flag(Rule::Sto022, s.context, subject, message);
            return;
        }
        let own = s.context == self.address;
        let associated = self.entity != Entity::Sender && self.judge.is_associated(s.slot, self.address);
        let (rule, allowed, what) = if own {
            (Rule::Sto031, self.staked, "the entity's own storage")
        } else if associated {
            (Rule::Sto032, self.staked, "associated with the entity")
        } else {
            let readable = self.staked && !s.write && !e.is_entity(s.context);
            (Rule::Sto033, readable, "neither the sender's nor associated with the sender or the entity")
        };
        if allowed {
            return;
        }
        let why = match (rule, self.staked) {
            (Rule::Sto033, true) => "a staked entity may only read such storage, of a contract that is no entity",
            (Rule::Sto033, false) if s.write => "no entity may write such storage",
            _ => "allowed only to a staked entity",
        };
        let message = format!("{access}: {what}; {why}");
        self.flag(rule, s.context, subject, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entities() -> Entities {
        Entities {
            sender: Address::repeat_byte(0x11),
            factory: Some(Address::repeat_byte(0x22)),
            paymaster: Some(Address::repeat_byte(0x33)),
        }
    }

    /// Slots `keccak256(A ‖ x) + n` for `n` in 0..128 and the slot `A` itself are associated
    /// with `A`; `+ 128` and other addresses' slots are not.
    #[test]
    fn associated_slots_are_the_address_and_128_past_its_hashes() {
        let e = entities();
        let mut input = B256::left_padding_from(e.sender.as_slice()).to_vec();
        input.extend_from_slice(&[0u8; 32]);
        let trace =
            Trace { segments: vec![], keccak: vec![input.clone().into()], done: true, error: None, output: None };
        let judge = Judge {
            entities: &e,
            entry_point: Address::ZERO,
            stakes: BTreeMap::new(),
            associated: associated(&e, &trace),
        };
        let base = U256::from_be_bytes(keccak256(&input).0);
        let slot = |n: u64| B256::from(base + U256::from(n));
        assert!(judge.is_associated(slot(0), e.sender));
        assert!(judge.is_associated(slot(127), e.sender));
        assert!(!judge.is_associated(slot(128), e.sender));
        assert!(!judge.is_associated(slot(0), Address::repeat_byte(0x22)));
        assert!(judge.is_associated(B256::left_padding_from(e.sender.as_slice()), e.sender));
        assert!(!judge.is_associated(B256::with_last_byte(1), e.sender));
    }

    /// The tracer is one JavaScript object literal with the marker to replace.
    #[test]
    fn the_tracer_names_the_marker_once() {
        assert_eq!(TRACER.matches("__BEFORE_EXECUTION__").count(), 1);
        assert!(TRACER.trim_start().starts_with('{') && TRACER.trim_end().ends_with('}'));
    }
}
