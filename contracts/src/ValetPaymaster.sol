// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IEntryPoint, PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {PaymasterSigner} from "@openzeppelin/contracts/account/paymaster/extensions/PaymasterSigner.sol";
import {ERC4337Utils} from "@openzeppelin/contracts/account/utils/ERC4337Utils.sol";
import {Calldata} from "@openzeppelin/contracts/utils/Calldata.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignerECDSA} from "@openzeppelin/contracts/utils/cryptography/signers/SignerECDSA.sol";

/// @title ValetPaymaster
/// @notice A verifying paymaster for EntryPoint v0.7: it pays the network fees of every operation
///         its sponsor key (the {signer}) approved, within the validity window the approval names.
///         Built on OpenZeppelin's `PaymasterSigner` with an ECDSA signer; the owner rotates the
///         signer and manages the EntryPoint deposit and stake.
///
/// @dev **paymasterAndData** (129 bytes, EntryPoint v0.7):
///
///      | offset | bytes | field                                                            |
///      |--------|-------|------------------------------------------------------------------|
///      | 0      | 20    | paymaster (this contract)                                        |
///      | 20     | 16    | paymasterVerificationGasLimit                                    |
///      | 36     | 16    | paymasterPostOpGasLimit (0 will do: there is no postOp)          |
///      | 52     | 6     | validAfter (uint48, unix seconds; 0: from any time)              |
///      | 58     | 6     | validUntil (uint48, unix seconds; 0: no end)                     |
///      | 64     | 65    | the signer's ECDSA signature `r ‖ s ‖ v` (low s)                 |
///
///      **What the signer signs**: OpenZeppelin's `PaymasterSigner` digest, the EIP-712 hash of
///      `UserOperationRequest(address sender,uint256 nonce,bytes initCode,bytes callData,
///      bytes32 accountGasLimits,uint256 preVerificationGas,bytes32 gasFees,
///      uint256 paymasterVerificationGasLimit,uint256 paymasterPostOpGasLimit,uint48 validAfter,
///      uint48 validUntil)` under the domain name "ValetPaymaster", version "1", this chain and
///      this contract ({userOpRequestHash} computes it). Every field of the operation but the
///      account's signature is covered, so an approval pays for one operation exactly as
///      approved; the account's own signature covers the userOpHash, which covers all of
///      paymasterAndData.
///
///      **Stricter than `PaymasterSigner`**, on purpose: paymasterAndData must be exactly 129
///      bytes (OpenZeppelin strips an EntryPoint v0.9 paymaster-signature suffix, which v0.7
///      does not have, and its ECDSA is to take 64-byte compact signatures from v6: more than one
///      encoding of one approval), and a window with the top bit of either bound set —
///      `PaymasterSigner`'s block-number flag, which EntryPoint v0.7 does not know and would read
///      as a timestamp millions of years away — is refused.
///      Anything else fails validation (`AA34 signature error`), and a window the block is
///      outside of fails in the EntryPoint (`AA32 paymaster expired or not due`).
///
///      **ERC-7562**: validation reads this contract's own storage (the signer) and nothing
///      else, with no banned opcode (time is checked by the EntryPoint from the returned
///      validationData); reading its own storage needs this paymaster to be staked ({addStake}).
///      It returns no context, so the EntryPoint calls no postOp.
///
///      Deployed through the deterministic deployment proxy: the constructor takes everything
///      it needs as arguments and never reads `msg.sender` (the proxy).
contract ValetPaymaster is PaymasterSigner, SignerECDSA, Ownable {
    /// @dev paymaster (20) ‖ two gas limits (32) ‖ validAfter (6) ‖ validUntil (6) ‖ signature (65).
    uint256 private constant PAYMASTER_AND_DATA_LENGTH = 129;

    /// @notice The sponsor key changed from `previousSigner` to `newSigner`.
    event SignerChanged(address indexed previousSigner, address indexed newSigner);

    /// @notice `signer` cannot approve operations (the zero address).
    error InvalidSigner(address signer);
    /// @notice Ownership cannot be renounced: nobody could withdraw the deposit and stake again.
    error RenounceDisabled();

    /// @param signer_ The sponsor key whose approvals this paymaster pays for.
    /// @param owner_ Who may rotate the signer and withdraw the deposit and stake.
    constructor(address signer_, address owner_)
        EIP712("ValetPaymaster", "1")
        SignerECDSA(signer_)
        Ownable(owner_)
    {
        if (signer_ == address(0)) revert InvalidSigner(signer_);
        emit SignerChanged(address(0), signer_);
    }

    /// @notice EntryPoint v0.7 at its canonical address, the only caller of validation.
    function entryPoint() public pure override returns (IEntryPoint) {
        return ERC4337Utils.ENTRYPOINT_V07;
    }

    /// @notice The digest the signer signs to approve `userOp` for the window
    ///         [`validAfter`, `validUntil`] (see the contract notes; `userOp.paymasterAndData`'s
    ///         gas limits are read from it, its data is not).
    function userOpRequestHash(PackedUserOperation calldata userOp, uint48 validAfter, uint48 validUntil)
        external
        view
        returns (bytes32)
    {
        return _signableUserOpHash(userOp, validAfter, validUntil);
    }

    // ------------------------------------------------------------------ owner

    /// @notice Replaces the sponsor key: approvals of the previous one are refused from now on.
    function setSigner(address newSigner) external onlyOwner {
        if (newSigner == address(0)) revert InvalidSigner(newSigner);
        emit SignerChanged(signer(), newSigner);
        _setSigner(newSigner);
    }

    /// @notice Adds `msg.value` to this paymaster's EntryPoint deposit, which pays for the
    ///         operations it sponsors. Anyone may.
    function deposit() external payable {
        _deposit(msg.value);
    }

    /// @notice This paymaster's EntryPoint deposit.
    function getDeposit() external view returns (uint256) {
        return entryPoint().balanceOf(address(this));
    }

    /// @notice Withdraws `amount` of the deposit to `to`.
    function withdraw(address payable to, uint256 amount) external onlyOwner {
        _withdraw(to, amount);
    }

    /// @notice Adds `msg.value` to the stake, with an unstake delay of `unstakeDelaySec` (the
    ///         EntryPoint refuses to shorten it). Owner only: anyone else could lengthen the
    ///         delay without bound, or lock again a stake being withdrawn.
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        _addStake(msg.value, unstakeDelaySec);
    }

    /// @notice Starts the unstake delay (bundlers stop treating this paymaster as staked).
    function unlockStake() external onlyOwner {
        _unlockStake();
    }

    /// @notice Withdraws the unlocked stake to `to`, once the unstake delay has passed.
    function withdrawStake(address payable to) external onlyOwner {
        _withdrawStake(to);
    }

    /// @notice Disabled: see {RenounceDisabled}. Ownership can be transferred.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }

    // ------------------------------------------------------------------ validation

    /// @dev paymasterAndData as laid out in the contract notes, read in place. A length other
    ///      than 129 bytes, or a window bound with the block-number flag, yields an empty
    ///      signature, which never verifies (`SIG_VALIDATION_FAILED`).
    function _decodePaymasterUserOp(PackedUserOperation calldata userOp)
        internal
        pure
        override
        returns (uint48 validAfter, uint48 validUntil, bytes calldata signature)
    {
        bytes calldata data = userOp.paymasterAndData;
        if (data.length != PAYMASTER_AND_DATA_LENGTH) return (0, 0, Calldata.emptyBytes());
        validAfter = uint48(bytes6(data[52:58]));
        validUntil = uint48(bytes6(data[58:64]));
        if ((validAfter | validUntil) & ERC4337Utils.BLOCK_RANGE_FLAG != 0) return (0, 0, Calldata.emptyBytes());
        signature = data[64:];
    }
}
