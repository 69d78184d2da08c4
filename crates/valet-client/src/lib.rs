#![doc = include_str!("../README.md")]

pub mod abi;
pub mod bundler;
pub mod client;
pub mod contracts;
pub mod deploy;
pub mod devnet;
pub mod erc7562;
mod error;
pub mod fees;
pub mod paymaster;
pub mod rpc;
pub mod session;
pub mod submit;

/// valet-core, re-exported: the session model, specs, the evaluator and the codecs.
#[doc(inline)]
pub use valet_core as core;
// The core types this crate's signatures carry, at the root beside the client.
pub use valet_core::spec::{Labels, SessionSpec};
pub use valet_core::{
    Call, Counters, Execution, Limit, Permission, Refusal, Rule, Session, SessionState, UserOperation,
};

pub use bundler::BundlerClient;
pub use client::{
    Account, AccountKind, ChainState, Deployment, Executed, FeeStatus, MultichainProposal, Prepared, Proposal,
    Revocation, Revoked, SessionStatus, Standing, Valet, chain_name,
};
pub use devnet::{Devnet, DevnetAddresses, DevnetOptions};
pub use error::{BoxError, Error};
pub use paymaster::{Erc7677, Paymaster, PaymasterFields, PaymasterStub, SponsorSigner};
pub use session::{GasLimits, GrantKind, SessionCall, SessionHandle, SessionRecord};
pub use submit::{Bundler, Direct, Fees, OpReceipt, Relayer, Submitter};
