//! The account's ERC-7579 `execute(bytes32 mode, bytes executionCalldata)` calldata: encoding,
//! and decoding that accepts exactly what the validator's `ExecutionLib` accepts
//! (`docs/encoding.md` §7).

use alloy_primitives::{Address, B256, Bytes, FixedBytes, U256, fixed_bytes};

use crate::Error;

/// `execute(bytes32,bytes)`.
pub const EXECUTE_SELECTOR: FixedBytes<4> = fixed_bytes!("0xe9ae5c53");
/// Most calls in one batch.
pub const MAX_BATCH_CALLS: usize = 32;

/// One call the account makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Call {
    /// Contract (or address) called.
    pub target: Address,
    /// Native value sent.
    pub value: U256,
    /// Calldata (selector and ABI arguments; empty for a plain transfer).
    pub data: Bytes,
}

/// What one operation executes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Execution {
    /// Mode `0x00…`: one call, packed as `target ‖ value ‖ data`.
    Single(Call),
    /// Mode `0x01 00…`: `abi.encode(Execution[])`.
    Batch(Vec<Call>),
}

impl Execution {
    /// The calls, in order.
    pub fn calls(&self) -> &[Call] {
        match self {
            Self::Single(call) => std::slice::from_ref(call),
            Self::Batch(calls) => calls,
        }
    }

    /// The account calldata `execute(mode, executionCalldata)`, canonically ABI-encoded.
    pub fn encode(&self) -> Bytes {
        let (mode, exec) = match self {
            Self::Single(c) => {
                let mut exec = Vec::with_capacity(52 + c.data.len());
                exec.extend_from_slice(c.target.as_slice());
                exec.extend_from_slice(&c.value.to_be_bytes::<32>());
                exec.extend_from_slice(&c.data);
                (B256::ZERO, exec)
            }
            Self::Batch(calls) => {
                let mut mode = B256::ZERO;
                mode.0[0] = 0x01;
                (mode, encode_batch(calls))
            }
        };
        let mut out = Vec::with_capacity(100 + exec.len() + 32);
        out.extend_from_slice(EXECUTE_SELECTOR.as_slice());
        out.extend_from_slice(mode.as_slice());
        out.extend_from_slice(&word(0x40));
        out.extend_from_slice(&word(exec.len()));
        out.extend_from_slice(&exec);
        pad(&mut out, exec.len());
        out.into()
    }

    /// Decodes account calldata exactly as the validator does, refusing every other function,
    /// mode and non-canonical encoding with the validator's reason.
    pub fn decode(call_data: &[u8]) -> Result<Self, Error> {
        let mut calls = Vec::new();
        let batch = visit(
            call_data,
            |_| Ok::<(), Error>(()),
            |_, call| {
                calls.push(call.to_call());
                Ok(())
            },
        )?;
        Ok(if batch { Self::Batch(calls) } else { Self::Single(calls.remove(0)) })
    }
}

/// A call as [`visit`] reads it, its data borrowed from the calldata (the evaluator reads the
/// calls without copying them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallRef<'a> {
    pub(crate) target: Address,
    pub(crate) value: U256,
    pub(crate) data: &'a [u8],
}

impl CallRef<'_> {
    fn to_call(self) -> Call {
        Call { target: self.target, value: self.value, data: Bytes::copy_from_slice(self.data) }
    }
}

/// Walks account calldata in the validator's order: the `execute` header, then for a batch its
/// length (`on_count`), then each call, decoded and handed to `on_call` before the next is read,
/// then the batch's end. For a single call `on_count(1)` comes after the header. Returns whether
/// it was a batch.
pub(crate) fn visit<'a, E: From<Error>>(
    call_data: &'a [u8],
    mut on_count: impl FnMut(usize) -> Result<(), E>,
    mut on_call: impl FnMut(usize, CallRef<'a>) -> Result<(), E>,
) -> Result<bool, E> {
    let size = call_data.len();
    if size < 4 {
        return Err(Error::UnsupportedAccountFunction(FixedBytes::ZERO).into());
    }
    let selector = FixedBytes::<4>::from_slice(&call_data[..4]);
    if selector != EXECUTE_SELECTOR {
        return Err(Error::UnsupportedAccountFunction(selector).into());
    }
    if size < 100 {
        return Err(non_canonical("execute calldata", size).into());
    }
    let mode = B256::from_slice(&call_data[4..36]);
    let mut batch_mode = B256::ZERO;
    batch_mode.0[0] = 0x01;
    let batch = mode == batch_mode;
    if !batch && mode != B256::ZERO {
        return Err(Error::UnsupportedExecutionMode(mode).into());
    }
    if read(call_data, 36) != U256::from(0x40) {
        return Err(non_canonical("bytes offset", 36).into());
    }
    let len = read(call_data, 68);
    let room = size - 100;
    if len > U256::from(room) || room - len.to::<usize>() >= 32 {
        return Err(non_canonical("bytes length", 68).into());
    }
    let exec = &call_data[100..100 + len.to::<usize>()];
    if !batch {
        if exec.len() < 52 {
            return Err(non_canonical("single execution", 100).into());
        }
        on_count(1)?;
        on_call(
            0,
            CallRef {
                target: Address::from_slice(&exec[..20]),
                value: U256::from_be_slice(&exec[20..52]),
                data: &exec[52..],
            },
        )?;
        return Ok(false);
    }
    visit_batch(exec, on_count, on_call)?;
    Ok(true)
}

fn word(x: usize) -> [u8; 32] {
    U256::from(x).to_be_bytes()
}

fn pad(out: &mut Vec<u8>, len: usize) {
    out.resize(out.len() + (32 - len % 32) % 32, 0);
}

fn read(bytes: &[u8], at: usize) -> U256 {
    U256::from_be_slice(&bytes[at..at + 32])
}

fn non_canonical(what: &'static str, offset: usize) -> Error {
    Error::NonCanonicalExecution { what, offset }
}

fn encode_batch(calls: &[Call]) -> Vec<u8> {
    let mut heads = Vec::with_capacity(32 * calls.len());
    let mut tails = Vec::new();
    let mut next = 32 * calls.len();
    for c in calls {
        heads.extend_from_slice(&word(next));
        let start = tails.len();
        tails.extend_from_slice(c.target.into_word().as_slice());
        tails.extend_from_slice(&c.value.to_be_bytes::<32>());
        tails.extend_from_slice(&word(0x60));
        tails.extend_from_slice(&word(c.data.len()));
        tails.extend_from_slice(&c.data);
        pad(&mut tails, c.data.len());
        next += tails.len() - start;
    }
    let mut out = Vec::with_capacity(64 + heads.len() + tails.len());
    out.extend_from_slice(&word(0x20));
    out.extend_from_slice(&word(calls.len()));
    out.extend_from_slice(&heads);
    out.extend_from_slice(&tails);
    out
}

/// `ExecutionLib.batchLength`, `batchCall` and `checkBatchEnd`, in that order.
fn visit_batch<'a, E: From<Error>>(
    exec: &'a [u8],
    mut on_count: impl FnMut(usize) -> Result<(), E>,
    mut on_call: impl FnMut(usize, CallRef<'a>) -> Result<(), E>,
) -> Result<(), E> {
    if exec.len() < 64 || read(exec, 0) != U256::from(0x20) {
        return Err(non_canonical("array offset", 0).into());
    }
    let n = read(exec, 32);
    if n.is_zero() || n > U256::from(MAX_BATCH_CALLS) {
        return Err(non_canonical("array length", 32).into());
    }
    let n = n.to::<usize>();
    if exec.len() < 64 + 32 * n {
        return Err(non_canonical("array heads", 64).into());
    }
    on_count(n)?;
    let mut expected = 32 * n;
    for i in 0..n {
        let head = 64 + 32 * i;
        if read(exec, head) != U256::from(expected) {
            return Err(non_canonical("element offset", head).into());
        }
        let base = 64 + expected;
        if exec.len() < base + 128 {
            return Err(non_canonical("element", base).into());
        }
        let target = read(exec, base);
        if target >> 160 != U256::ZERO {
            return Err(non_canonical("target", base).into());
        }
        if read(exec, base + 64) != U256::from(0x60) {
            return Err(non_canonical("callData offset", base + 64).into());
        }
        let len = read(exec, base + 96);
        if len > U256::from(exec.len() - base - 128) {
            return Err(non_canonical("callData length", base + 96).into());
        }
        let len = len.to::<usize>();
        on_call(
            i,
            CallRef {
                target: Address::from_word(B256::from(target)),
                value: read(exec, base + 32),
                data: &exec[base + 128..base + 128 + len],
            },
        )?;
        expected += 128 + len.div_ceil(32) * 32;
    }
    if 64 + expected != exec.len() {
        return Err(non_canonical("batch end", exec.len()).into());
    }
    Ok(())
}
