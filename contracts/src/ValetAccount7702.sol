// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccountERC7579} from "@openzeppelin/contracts/account/extensions/draft-AccountERC7579.sol";
import {IEntryPoint, PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {
    IERC7579Module,
    IERC7579Validator,
    MODULE_TYPE_VALIDATOR
} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ERC4337Utils} from "@openzeppelin/contracts/account/utils/ERC4337Utils.sol";
import {Calldata} from "@openzeppelin/contracts/utils/Calldata.sol";
import {SignerEIP7702} from "@openzeppelin/contracts/utils/cryptography/signers/SignerEIP7702.sol";
import {ERC721Holder} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Holder.sol";
import {ERC1155Holder} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Holder.sol";
import {SessionKeyValidator} from "./SessionKeyValidator.sol";

/// @title ValetAccount7702
/// @notice Valet's account for a plain EOA: the EOA delegates its code to this implementation
///         with EIP-7702 and becomes an ERC-4337 account for EntryPoint v0.8 whose owner is the
///         EOA's own key, with the {SessionKeyValidator} as its session module. OpenZeppelin's
///         `Account` + `AccountERC7579` + `SignerEIP7702`.
///
/// @dev **Delegation.** The EOA signs an EIP-7702 authorization `(chain id, this implementation,
///      EOA nonce)`; any type-4 transaction carrying it (its own, or a bundler's, which takes it as
///      the operation's `eip7702Auth`) sets the EOA's code to `0xef0100 ‖ implementation`. From
///      then on the EOA runs this code in its own context: its own address, balance and storage.
///      Nothing runs at delegation time — there is no constructor and no initializer — so the
///      implementation's only per-deployment value, {sessionValidator}, is an immutable in the
///      code, and everything per-EOA happens in {activate}.
///
///      **Activation.** {activate} installs the {SessionKeyValidator} as an ERC-7579 validator with
///      the EOA itself as the owner who signs grants and revocations. It runs either as a call from
///      the EOA to itself (a type-4 transaction to itself, or an owner-signed operation's
///      `execute`), or inside the first operation: EntryPoint v0.8 reads an `initCode` that starts
///      with the 20-byte marker `0x7702` followed by 18 zero bytes as "this sender is an EIP-7702
///      account", checks the sender's code is a delegation designator, and, if calldata follows the
///      marker, has its SenderCreator call the sender with it before validating the operation. So
///      `initCode = 0x7702 ‖ 00×18 ‖ activate()` activates, and the operation is then validated by
///      this account as any other: an operation that does not validate reverts the whole
///      `handleOps`, activation included. The userOpHash of such an operation hashes
///      `delegate ‖ activate()` in place of the initCode, so every signature over it commits to
///      this implementation. SenderCreator also calls ordinary factories (`initCode = factory ‖
///      calldata`), so another sender's operation could name this EOA as its "factory": the call
///      lands, but {activate} returns no address, the EntryPoint refuses that operation (AA13)
///      and the whole `handleOps` reverts with it.
///      A re-activation that has something to void draws the new epoch from BLOCKHASH,
///      PREVRANDAO and NUMBER, which ERC-7562 forbids during validation: bundlers that check
///      ERC-7562 accept it in an operation's callData (`execute` → {activate}) or in the EOA's own
///      transaction, not in its initCode. The first activation of an EOA reads no such opcode.
///
///      **Lifecycle rule: storage outlives a delegation.** Delegating away (to another contract or
///      to address 0) stops every session at once: no code forwards operations to the validator,
///      and the EntryPoint refuses an EOA without code (AA20). But the validator's record for the
///      EOA (installed, owner, epoch, enabled sessions and their counters) and this account's own
///      ERC-7579 module list stay where they were. Coming back through {activate} voids everything
///      from before: if the validator still has the EOA as installed (or this account still lists
///      it), {activate} first uninstalls it, which moves the EOA's epoch to a value no one could
///      predict, so every session enabled and every grant signed before is refused with
///      `SessionEpochMismatch`; then it installs again. If the validator was already uninstalled
///      (a {deactivate} before leaving, or a never-used EOA) the epoch already moved at that
///      uninstall (or is the initial 0), so {activate} only installs, and a grant signed for that
///      current epoch may enable a session in the very operation that activates.
///      What the chain cannot see is a return without {activate}: a re-delegation to this
///      implementation that never calls it finds the validator's record exactly as it was left —
///      if it was installed, the sessions enabled under its epoch work again, within their own
///      windows, uses and budgets, and unused grants signed under that epoch can still enable
///      theirs. Valet's tooling always activates when it delegates an EOA to this implementation
///      and always calls {deactivate} before the EOA delegates away, so that window never opens
///      for its users. Other modules installed through {installModule} persist the same way and
///      are not touched by {activate}; an owner who installed any must uninstall them before
///      leaving.
///
///      **Why the owner approves twice.** The 7702 authorization signs only the chain id, the
///      delegate's address and the EOA's nonce: it cannot commit to a session. A session needs
///      the owner's EIP-712 grant as well (`Grant(account, session)`, verified by the validator
///      against the EOA's key), so granting a session to a plain EOA is two signatures: the
///      authorization (once per delegation) and the grant (once per session).
///
///      **Validation.** As {ValetAccount}: the nonce key's top 20 bytes choose the validator. The
///      {sessionValidator} gets the operation forwarded without a look at the module list (it
///      keeps its own installed record and refuses an EOA that has not activated, `NotInstalled`);
///      another installed validator gets it forwarded; anything else is checked against the EOA's
///      own key, ECDSA over the userOpHash as given. EntryPoint v0.8's userOpHash is already an
///      EIP-712 digest (domain "ERC4337", version "1", this chain, the EntryPoint), so a wallet's
///      `eth_signTypedData_v4` of the PackedUserOperation signs exactly it; no EIP-191 wrapping.
///
///      **ERC-1271.** 65 bytes are the EOA key's signature over the hash as given; longer
///      signatures are `validator address ‖ inner signature` for an installed validator module.
contract ValetAccount7702 is AccountERC7579, SignerEIP7702, ERC721Holder, ERC1155Holder {
    /// @notice EntryPoint v0.8 at its canonical address (CREATE2 from the deterministic deployer
    ///         0x4e59b44847b379578588920cA78FbF26c0B4956C, salt
    ///         0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9).
    address public constant ENTRY_POINT = 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108;

    /// @notice The SenderCreator of EntryPoint v0.8 (the EntryPoint's first CREATE): it calls an
    ///         EIP-7702 sender with the calldata after the `0x7702` initCode marker. A constant
    ///         rather than `entryPoint().senderCreator()`, because ERC-7562 forbids calling the
    ///         EntryPoint during validation.
    address public constant SENDER_CREATOR = 0x449ED7C3e6Fee6a97311d4b55475DF59C44AdD33;

    /// @notice The {SessionKeyValidator} that {activate} installs.
    address public immutable sessionValidator;

    /// @notice The validator given to the constructor is address 0.
    error ZeroValidator();

    /// @notice `caller` may not (de)activate this account: {activate} takes only the EOA itself or
    ///         EntryPoint v0.8's SenderCreator, {deactivate} only the EOA itself.
    error UnauthorizedActivation(address caller);

    /// @notice The EOA installed {sessionValidator} with itself as the owner. `voidedEarlier`:
    ///         an installation from before was found and uninstalled first, so every session and
    ///         grant from before is void.
    event Activated(address indexed validator, bool voidedEarlier);

    /// @notice The EOA uninstalled {sessionValidator}: every session and grant is void.
    event Deactivated(address indexed validator);

    /// @param validator The {SessionKeyValidator} every EOA delegating here activates.
    constructor(address validator) {
        if (validator == address(0)) revert ZeroValidator();
        sessionValidator = validator;
    }

    /// @notice Makes the EOA a Valet account: installs {sessionValidator} with the EOA as the owner
    ///         of its sessions, after voiding whatever an earlier installation left (see the
    ///         lifecycle rule in the contract notes). Callable by the EOA itself or, through the
    ///         `0x7702` initCode of an operation, by EntryPoint v0.8's SenderCreator.
    function activate() external {
        if (msg.sender != address(this) && msg.sender != SENDER_CREATOR) revert UnauthorizedActivation(msg.sender);
        address validator = sessionValidator;
        bool voided = _voidValidator(validator);
        _installModule(MODULE_TYPE_VALIDATOR, validator, abi.encode(address(this)));
        emit Activated(validator, voided);
    }

    /// @notice Uninstalls {sessionValidator}, voiding every session and every grant (the EOA moves
    ///         to a new epoch). Never fails for the EOA itself, installed or not: `valet account
    ///         leave` calls it before the EOA delegates away.
    function deactivate() external {
        if (msg.sender != address(this)) revert UnauthorizedActivation(msg.sender);
        address validator = sessionValidator;
        if (!_voidValidator(validator)) IERC7579Module(validator).onUninstall("");
        emit Deactivated(validator);
    }

    /// @notice EntryPoint v0.8 at its canonical address.
    function entryPoint() public pure override returns (IEntryPoint) {
        return IEntryPoint(ENTRY_POINT);
    }

    /// @notice The owner: the EOA itself, whose key signs operations and grants.
    function owner() external view returns (address) {
        return address(this);
    }

    /// @inheritdoc AccountERC7579
    function accountId() public pure override returns (string memory) {
        return "valet.ValetAccount7702.v0.1.0";
    }

    /// @notice ERC-1271: 65 bytes are the EOA key's ECDSA signature over `hash`; anything longer is
    ///         `validator ‖ signature` for an installed validator module.
    function isValidSignature(bytes32 hash, bytes calldata signature) public view override returns (bytes4) {
        if (signature.length == 65) {
            return _rawSignatureValidation(hash, signature) ? this.isValidSignature.selector : bytes4(0xffffffff);
        }
        return super.isValidSignature(hash, signature);
    }

    /// @dev Uninstalls `validator` if this account lists it (AccountERC7579's own record, whose
    ///      uninstall calls the validator's `onUninstall`), or else has the validator drop an
    ///      installed record it still holds for this address (one left by an earlier delegation
    ///      that this account's list does not show). Either way the validator moves the epoch.
    ///      Returns whether there was anything to void.
    function _voidValidator(address validator) private returns (bool) {
        if (isModuleInstalled(MODULE_TYPE_VALIDATOR, validator, Calldata.emptyBytes())) {
            _uninstallModule(MODULE_TYPE_VALIDATOR, validator, "");
            return true;
        }
        if (SessionKeyValidator(validator).isInitialized(address(this))) {
            IERC7579Module(validator).onUninstall("");
            return true;
        }
        return false;
    }

    /// @dev As {ValetAccount}: the nonce key's validator — the {sessionValidator} without a look
    ///      at the module list, another one if installed — or else the EOA's key over the
    ///      userOpHash as given (OpenZeppelin's default {_signableUserOpHash}: v0.8's hash is
    ///      already an EIP-712 digest). Module operations are forwarded as this call's own calldata
    ///      with the selector swapped.
    function _validateUserOp(PackedUserOperation calldata userOp, bytes32 userOpHash, bytes calldata signature)
        internal
        override
        returns (uint256)
    {
        address module = _extractUserOpValidator(userOp);
        if (module == sessionValidator) return _forwardToValidator(module);
        if (!isModuleInstalled(MODULE_TYPE_VALIDATOR, module, Calldata.emptyBytes())) {
            return _rawSignatureValidation(_signableUserOpHash(userOp, userOpHash), signature)
                ? ERC4337Utils.SIG_VALIDATION_SUCCESS
                : ERC4337Utils.SIG_VALIDATION_FAILED;
        }
        return _forwardToValidator(module);
    }

    /// @dev This call's calldata is `validateUserOp(PackedUserOperation, bytes32 userOpHash,
    ///      uint256)` from the EntryPoint (only it may call). `IERC7579Validator.validateUserOp(
    ///      PackedUserOperation, bytes32)` reads the same head words with the offsets unchanged and
    ///      ignores the third, so only the selector changes and the module gets the userOpHash.
    function _forwardToValidator(address module) private returns (uint256 validationData) {
        bytes4 selector = IERC7579Validator.validateUserOp.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            calldatacopy(m, 0, calldatasize())
            mstore(m, or(selector, shr(32, shl(32, mload(m)))))
            if iszero(call(gas(), module, 0, m, calldatasize(), 0x00, 0x20)) {
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if lt(returndatasize(), 0x20) { revert(0, 0) }
            validationData := mload(0x00)
        }
    }

    /// @dev The EOA key's ECDSA check (AccountERC7579 alone would refuse everything).
    function _rawSignatureValidation(bytes32 hash, bytes calldata signature)
        internal
        view
        override(AccountERC7579, SignerEIP7702)
        returns (bool)
    {
        return SignerEIP7702._rawSignatureValidation(hash, signature);
    }
}
