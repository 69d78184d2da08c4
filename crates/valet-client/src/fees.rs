//! What an operation pays: the fee strategy that turns a submitter's quote into the fees an
//! operation carries ([`FeeStrategy`], [`FeePolicy`]), and what a rollup's L1 data costs, paid
//! through `preVerificationGas` ([`L1DataFee`], [`OpStackL1Fee`]).
//!
//! A submitter quotes fees it will accept now ([`crate::Submitter::fees`]); [`crate::Valet`]
//! passes the quote through its strategy before building an operation ([`crate::Valet::with_fees`]).
//! The default takes the quote as it is. [`FeePolicy`] raises it by a percentage, puts a floor
//! under the priority fee, refuses to build above a cap ([`crate::Error::FeeCapExceeded`]), and
//! replaces an operation stuck in a bundler's mempool: built again on the same nonce (which
//! [`crate::Valet::prepare`] does while the stuck one is not included) with fees the bundler's
//! replacement rule accepts ([`FeePolicy::replacing`]).
//!
//! ```
//! use valet_client::Fees;
//! use valet_client::fees::{FeePolicy, FeeStrategy as _};
//!
//! let quoted = Fees { max_fee_per_gas: 30_000_000_000, max_priority_fee_per_gas: 1_000_000_000 };
//! let policy = FeePolicy { bump_percent: 20, max_fee_cap: Some(100_000_000_000), ..FeePolicy::default() };
//! let fees = policy.choose(quoted).expect("under the cap");
//! assert_eq!(fees.max_fee_per_gas, 36_000_000_000);
//!
//! // Replacing an operation sent with `quoted` that a bundler still holds: at least 10% more of both.
//! let replacement = FeePolicy::replacing(quoted).choose(quoted).expect("no cap");
//! assert_eq!(replacement.max_priority_fee_per_gas, 1_100_000_000);
//! ```

use std::fmt::Debug;

use alloy::primitives::{Address, Bytes, U256, address};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

use crate::Error;
use crate::submit::{BoxFuture, Fees};

/// Turns the fees a submitter quotes into the fees an operation carries.
pub trait FeeStrategy: Send + Sync + Debug {
    /// The fees for an operation built now, from the submitter's `quoted` fees. An error stops
    /// the operation before anything is signed or sent.
    fn fees<'a>(&'a self, quoted: Fees) -> BoxFuture<'a, Result<Fees, Error>>;
}

/// The submitter's quote, as it is: the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quoted;

impl FeeStrategy for Quoted {
    fn fees<'a>(&'a self, quoted: Fees) -> BoxFuture<'a, Result<Fees, Error>> {
        Box::pin(async move { Ok(quoted) })
    }
}

/// Fees from the quote by fixed rules, applied in this order: the bump, the priority floor, the
/// floor of an operation being replaced, then the cap (which refuses rather than lowers: an
/// operation under the chain's price would wait, unincluded, holding its nonce).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeePolicy {
    /// Percent added to both quoted fees (20 pays 1.2 times the quote): included sooner, and
    /// still included when the base fee rises while the operation waits.
    pub bump_percent: u32,
    /// The least priority fee to offer, in wei per gas (a chain whose quote is 0).
    pub min_priority_fee: u128,
    /// The most to offer per gas, in wei: above it, building fails with
    /// [`Error::FeeCapExceeded`] and nothing is signed.
    pub max_fee_cap: Option<u128>,
    /// Fees of an operation this one replaces on the same nonce: both fees at least
    /// [`REPLACEMENT_PERCENT`] above them (the ERC-4337 mempool's replacement rule).
    pub replaces: Option<Fees>,
}

/// How much more of both fees a bundler wants before it replaces an operation it holds with
/// another of the same sender and nonce (ERC-7562's mempool rules; Alto, Rundler, Skandha).
pub const REPLACEMENT_PERCENT: u32 = 10;

impl FeePolicy {
    /// The policy replacing an operation sent with `previous` fees: the quote, or
    /// [`REPLACEMENT_PERCENT`] above `previous`, whichever is more, fee by fee.
    pub fn replacing(previous: Fees) -> Self {
        Self { replaces: Some(previous), ..Self::default() }
    }

    /// The fees it chooses for `quoted`.
    pub fn choose(&self, quoted: Fees) -> Result<Fees, Error> {
        let bump = |fee: u128| fee.saturating_add(fee.saturating_mul(u128::from(self.bump_percent)) / 100);
        let mut priority = bump(quoted.max_priority_fee_per_gas).max(self.min_priority_fee);
        let mut max_fee = bump(quoted.max_fee_per_gas);
        if let Some(previous) = self.replaces {
            let above =
                |fee: u128| fee.saturating_add((fee.saturating_mul(u128::from(REPLACEMENT_PERCENT))).div_ceil(100));
            priority = priority.max(above(previous.max_priority_fee_per_gas));
            max_fee = max_fee.max(above(previous.max_fee_per_gas));
        }
        // A max fee below the priority fee is invalid (EIP-1559): it carries the priority fee.
        max_fee = max_fee.max(priority);
        if let Some(cap) = self.max_fee_cap
            && max_fee > cap
        {
            return Err(Error::FeeCapExceeded { max_fee_per_gas: max_fee, cap });
        }
        Ok(Fees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: priority })
    }
}

impl FeeStrategy for FeePolicy {
    fn fees<'a>(&'a self, quoted: Fees) -> BoxFuture<'a, Result<Fees, Error>> {
        Box::pin(async move { self.choose(quoted) })
    }
}

/// What a rollup charges for posting an operation's bytes to L1, which the operation must pay
/// through its `preVerificationGas` (the only gas field the EntryPoint charges for work outside
/// the account). Bundlers on rollups add it to their estimates; [`crate::Direct`] adds it when
/// given one ([`crate::Direct::with_l1_fee`]).
pub trait L1DataFee: Send + Sync + Debug {
    /// The L1 fee, in wei, for a transaction carrying `data` (the `handleOps` calldata of the
    /// operation alone: the worst case of a bundle of one).
    fn l1_fee<'a>(&'a self, data: &'a Bytes) -> BoxFuture<'a, Result<U256, Error>>;
}

/// The OP Stack's L1 data fee (Optimism, Base, and the other OP chains), from their
/// `GasPriceOracle` predeploy's `getL1Fee(bytes)`.
#[derive(Debug, Clone)]
pub struct OpStackL1Fee {
    provider: DynProvider,
    oracle: Address,
}

/// The OP Stack's `GasPriceOracle` predeploy.
pub const OP_STACK_GAS_PRICE_ORACLE: Address = address!("0x420000000000000000000000000000000000000F");

alloy::sol! {
    /// The OP Stack's `GasPriceOracle` (the one function used).
    interface GasPriceOracle {
        function getL1Fee(bytes data) external view returns (uint256);
    }
}

/// Bytes a transaction adds around its calldata on L1 (its RLP envelope and signature),
/// counted as non-zero bytes: the oracle is given the calldata with this much padding.
const TRANSACTION_ENVELOPE_BYTES: usize = 100;

impl OpStackL1Fee {
    /// The fee as the chain behind `provider` computes it, at its predeploy.
    pub fn new(provider: impl Provider + 'static) -> Self {
        Self { provider: provider.erased(), oracle: OP_STACK_GAS_PRICE_ORACLE }
    }

    /// The same oracle at another address (a fork or a test chain that put it elsewhere).
    #[must_use]
    pub fn at(mut self, oracle: Address) -> Self {
        self.oracle = oracle;
        self
    }
}

impl L1DataFee for OpStackL1Fee {
    fn l1_fee<'a>(&'a self, data: &'a Bytes) -> BoxFuture<'a, Result<U256, Error>> {
        Box::pin(async move {
            let padded = [data.as_ref(), &[0xff; TRANSACTION_ENVELOPE_BYTES]].concat();
            let call = GasPriceOracle::getL1FeeCall { data: padded.into() };
            let tx = TransactionRequest::default().to(self.oracle).input(call.abi_encode().into());
            let answer = self
                .provider
                .call(tx)
                .await
                .map_err(|e| Error::rpc_in(format!("GasPriceOracle {}", self.oracle), e))?;
            GasPriceOracle::getL1FeeCall::abi_decode_returns(&answer)
                .map_err(|e| Error::rpc_in(format!("GasPriceOracle {} answered {answer}", self.oracle), e))
        })
    }
}

/// Gas to add to `preVerificationGas` so that the operation pays `l1_fee` at `gas_price` (the
/// price it will pay per gas), with a tenth more: the L1 price moves between estimate and
/// inclusion.
pub fn l1_gas(l1_fee: U256, gas_price: u128) -> U256 {
    if gas_price == 0 {
        return U256::ZERO;
    }
    let with_margin = l1_fee.saturating_add(l1_fee / U256::from(10));
    with_margin.div_ceil(U256::from(gas_price))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    fn quote(max: u128, priority: u128) -> Fees {
        Fees { max_fee_per_gas: max * GWEI, max_priority_fee_per_gas: priority * GWEI }
    }

    #[test]
    fn the_policy_bumps_floors_and_caps_in_order() {
        assert_eq!(FeePolicy::default().choose(quote(30, 1)).expect("quote"), quote(30, 1));
        let bumped = FeePolicy { bump_percent: 50, ..FeePolicy::default() };
        assert_eq!(bumped.choose(quote(30, 2)).expect("bumped"), quote(45, 3));
        let floor = FeePolicy { min_priority_fee: 2 * GWEI, ..FeePolicy::default() };
        assert_eq!(floor.choose(quote(30, 0)).expect("floored"), quote(30, 2));
        // A floor above the quoted max fee lifts the max fee with it.
        assert_eq!(floor.choose(quote(1, 0)).expect("floored"), quote(2, 2));
        let capped = FeePolicy { bump_percent: 20, max_fee_cap: Some(35 * GWEI), ..FeePolicy::default() };
        assert_eq!(
            capped.choose(quote(29, 1)).expect("under"),
            Fees { max_fee_per_gas: 34_800_000_000, ..quote(0, 0) }.with_priority(1_200_000_000)
        );
        let refused = capped.choose(quote(30, 1)).expect_err("above the cap");
        assert!(
            matches!(refused, Error::FeeCapExceeded { max_fee_per_gas: 36_000_000_000, cap: 35_000_000_000 }),
            "{refused:?}"
        );
    }

    #[test]
    fn a_replacement_beats_the_operation_it_replaces_by_a_tenth() {
        let stuck = quote(30, 1);
        // The quote fell: still 10% above what the bundler holds.
        assert_eq!(
            FeePolicy::replacing(stuck).choose(quote(20, 1)).expect("replacement"),
            quote(33, 0).with_priority(1_100_000_000)
        );
        // The quote rose past it: the quote.
        assert_eq!(FeePolicy::replacing(stuck).choose(quote(50, 2)).expect("replacement"), quote(50, 2));
        // Rounded up: 10% of 15 wei is 2, never 1.
        let tiny = Fees { max_fee_per_gas: 15, max_priority_fee_per_gas: 15 };
        assert_eq!(
            FeePolicy::replacing(tiny).choose(tiny).expect("replacement"),
            Fees { max_fee_per_gas: 17, max_priority_fee_per_gas: 17 }
        );
    }

    #[test]
    fn l1_gas_pays_the_fee_with_a_margin() {
        assert_eq!(l1_gas(U256::from(1_000_000u64), 1_000), U256::from(1_100));
        assert_eq!(l1_gas(U256::from(1u64), 3), U256::from(1), "rounded up");
        assert_eq!(l1_gas(U256::from(5u64), 0), U256::ZERO);
    }

    impl Fees {
        fn with_priority(self, priority: u128) -> Self {
            Self { max_priority_fee_per_gas: priority, ..self }
        }
    }
}
