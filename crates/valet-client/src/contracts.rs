//! Bindings generated from the checked-in artifacts (`contracts/artifacts/`), so building the
//! crate never needs node or forge.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

/// EntryPoint v0.7 (its artifact names `PackedUserOperation` unqualified, so it has its own module).
pub mod entry_point {
    pub use self::EntryPoint::PackedUserOperation;
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        EntryPoint,
        "../../contracts/artifacts/EntryPoint.json"
    );
}

/// EntryPoint v0.8, the EntryPoint of EIP-7702 accounts (its own module for the same reason).
pub mod entry_point_v08 {
    pub use self::EntryPointV08::PackedUserOperation;
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        EntryPointV08,
        "../../contracts/artifacts/EntryPointV08.json"
    );
}

alloy::sol!(
    #[sol(rpc, abi)]
    #[derive(Debug, PartialEq, Eq)]
    SessionKeyValidator,
    "../../contracts/artifacts/SessionKeyValidator.json"
);
alloy::sol!(
    #[sol(rpc)]
    ValetAccountFactory,
    "../../contracts/artifacts/ValetAccountFactory.json"
);
/// The account itself: its `validateUserOp` (measured by the direct submitter) and owner views.
pub mod account {
    alloy::sol!(
        #[sol(rpc)]
        ValetAccount,
        "../../contracts/artifacts/ValetAccount.json"
    );
}

/// The implementation a plain EOA delegates to with EIP-7702 (EntryPoint v0.8): `activate`,
/// `deactivate`, `execute`.
pub mod account_7702 {
    alloy::sol!(
        #[sol(rpc, abi)]
        #[derive(Debug, PartialEq, Eq)]
        ValetAccount7702,
        "../../contracts/artifacts/ValetAccount7702.json"
    );
}

/// Declares [`demo`] with the visibility the `demo` feature gives it.
macro_rules! demo_contracts {
    ($vis:vis) => {
        /// The demo contracts (`contracts/src/demo/`): an ERC-721, an ERC-20 and a DAO, which the
        /// devnet and `valet deploy --demo` deploy and whose errors [`crate::submit::decode_revert`]
        /// decodes. Public with the `demo` feature (for the `valet` command, the service and their
        /// tests); an app binds the contracts it calls itself, with `alloy::sol!`.
        #[cfg_attr(not(feature = "demo"), allow(dead_code))]
        $vis mod demo {
            alloy::sol!(
                #[sol(rpc, abi)]
                ValetNFT,
                "../../contracts/artifacts/ValetNFT.json"
            );
            alloy::sol!(
                #[sol(rpc, abi)]
                ValetToken,
                "../../contracts/artifacts/ValetToken.json"
            );
            alloy::sol!(
                #[sol(rpc, abi)]
                ValetDAO,
                "../../contracts/artifacts/ValetDAO.json"
            );
        }
    };
}
#[cfg(feature = "demo")]
demo_contracts!(pub);
#[cfg(not(feature = "demo"))]
demo_contracts!(pub(crate));

alloy::sol!(
    #[sol(rpc, abi)]
    #[derive(Debug, PartialEq, Eq)]
    ValetPaymaster,
    "../../contracts/artifacts/ValetPaymaster.json"
);

/// The packed operation as each binding that takes one spells it.
macro_rules! packed_from_core {
    ($($binding:ty),*) => {$(
        impl From<&valet_core::PackedUserOperation> for $binding {
            fn from(op: &valet_core::PackedUserOperation) -> Self {
                Self {
                    sender: op.sender,
                    nonce: op.nonce,
                    initCode: op.init_code.clone(),
                    callData: op.call_data.clone(),
                    accountGasLimits: op.account_gas_limits,
                    preVerificationGas: op.pre_verification_gas,
                    gasFees: op.gas_fees,
                    paymasterAndData: op.paymaster_and_data.clone(),
                    signature: op.signature.clone(),
                }
            }
        }
    )*};
}

packed_from_core!(
    entry_point::PackedUserOperation,
    entry_point_v08::PackedUserOperation,
    account::ValetAccount::PackedUserOperation,
    account_7702::ValetAccount7702::PackedUserOperation,
    ValetPaymaster::PackedUserOperation
);
