#![doc = include_str!("../README.md")]

pub mod eip712;
mod error;
pub mod evaluator;
pub mod execution;
pub mod session;
pub mod signature;
pub mod spec;
pub mod user_operation;

pub use error::Error;
pub use evaluator::{
    Counters, Evaluator, OpGas, Refusal, Request, SessionState, Verdict, assign_permissions, evaluate,
};
pub use execution::{Call, Execution};
pub use session::{Limit, LimitKind, Permission, Rule, RuleOp, Session};
pub use user_operation::{PackedUserOperation, UserOperation};

/// EntryPoint v0.7 at its canonical address.
pub const ENTRY_POINT_V07: alloy_primitives::Address =
    alloy_primitives::address!("0x0000000071727De22E5E9d8BAf0edAc6f37da032");

/// EntryPoint v0.8 at its canonical address (CREATE2 through the deterministic deployment proxy,
/// salt `0x0a59dbff…5e35e9`): the EntryPoint of EIP-7702 accounts.
pub const ENTRY_POINT_V08: alloy_primitives::Address =
    alloy_primitives::address!("0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108");
