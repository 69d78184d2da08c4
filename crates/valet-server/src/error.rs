use alloy::primitives::U256;

/// What the service can fail with (HTTP answers are [`crate::api::ApiError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// Sealing or opening a key failed.
    #[error("{0}")]
    Crypto(String),
    /// valet-client failed.
    #[error(transparent)]
    Client(#[from] valet_client::Error),
    /// valet-core refused an input.
    #[error(transparent)]
    Core(#[from] valet_core::Error),
    /// The app's sponsorship budget cannot cover the operation today: its maximum cost is more
    /// than what is left of the budget of the current UTC day. Nothing was approved or sent.
    #[error(
        "sponsorship budget exceeded: this operation may cost up to {} in network fees, but only {} is left today (UTC) of this app's daily sponsorship budget of {}; nothing was sent",
        crate::sponsorship::wei(*max_cost),
        crate::sponsorship::wei(*left),
        crate::sponsorship::wei(*budget)
    )]
    SponsorshipBudgetExceeded {
        /// The app's daily budget, in wei.
        budget: U256,
        /// What is left of it today, in wei: the budget less today's actual costs and open
        /// reservations.
        left: U256,
        /// The operation's maximum cost, in wei: every gas limit times maxFeePerGas.
        max_cost: U256,
    },
    /// The service has no client for this kind of account (`smart` or `eip7702`): it was started
    /// without one.
    #[error("this service does not serve {0} accounts (it was started without a client for them)")]
    AccountKindUnavailable(&'static str),
    /// The service does not sponsor this app's operations: why (the app has no budget, or the
    /// service runs without a sponsor).
    #[error("{0}")]
    NotSponsored(String),
    /// The service does not serve this chain (it has no client for it).
    #[error("this service does not serve chain {chain_id}: it serves {}", served.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    ChainNotServed {
        /// The chain asked for.
        chain_id: u64,
        /// The chains the service serves, its main one first.
        served: Vec<u64>,
    },
}
