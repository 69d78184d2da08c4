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
}
