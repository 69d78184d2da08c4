#![doc = include_str!("../README.md")]

pub mod abi;
pub mod bundler;
pub mod client;
pub mod contracts;
pub mod deploy;
pub mod devnet;
pub mod erc7562;
mod error;
pub mod paymaster;
pub mod rpc;
pub mod session;
pub mod submit;

/// valet-core, re-exported: the session model, specs, the evaluator and the codecs.
pub use valet_core as core;

pub use bundler::BundlerClient;
pub use client::{Account, ChainState, Deployment, Executed, FeeStatus, Prepared, Proposal, SessionStatus, Valet};
pub use devnet::{Devnet, DevnetAddresses, DevnetOptions};
pub use error::Error;
pub use paymaster::{Erc7677, Paymaster, PaymasterFields, PaymasterStub, SponsorSigner};
pub use session::{GasLimits, SessionCall, SessionHandle, SessionRecord};
pub use submit::{Bundler, Direct, Fees, OpReceipt, Relayer, Submitter};
