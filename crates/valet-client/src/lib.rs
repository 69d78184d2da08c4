#![doc = include_str!("../README.md")]

pub mod contracts;
pub mod devnet;
mod error;
pub mod session;
pub mod submit;

pub use devnet::{Devnet, DevnetAddresses};
pub use error::Error;
pub use session::{GasLimits, SessionCall, SessionHandle};
