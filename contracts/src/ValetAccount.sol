// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccountERC7579} from "@openzeppelin/contracts/account/extensions/draft-AccountERC7579.sol";
import {IEntryPoint, PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC7579Validator, MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ERC4337Utils} from "@openzeppelin/contracts/account/utils/ERC4337Utils.sol";
import {Calldata} from "@openzeppelin/contracts/utils/Calldata.sol";
import {SignerECDSA} from "@openzeppelin/contracts/utils/cryptography/signers/SignerECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ERC721Holder} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Holder.sol";
import {ERC1155Holder} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Holder.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

/// @title ValetAccount
/// @notice Valet's ERC-4337 smart account: OpenZeppelin's `Account` + `AccountERC7579` with one
///         ECDSA owner, for EntryPoint v0.7. Deployed as an EIP-1167 clone by {ValetAccountFactory}
///         and initialised with the {SessionKeyValidator} already installed.
/// @dev Which validator checks an operation is chosen by the operation's nonce key, as ERC-7579
///      accounts do: the key's top 20 bytes name an installed validator module. A key whose top
///      20 bytes are not an installed validator (for example key 0) is checked against the owner.
///      The {SessionKeyValidator} the implementation was built for is the exception: operations
///      naming it go to it without a look at the module list, because it keeps its own record of
///      the accounts it is installed on (set by `onInstall`, cleared by `onUninstall`, both called
///      by `installModule`/`uninstallModule`) and refuses the others (`NotInstalled`). It reads
///      that record anyway — it holds the account's revoke-all epoch — so reading the module list
///      too would cost every session operation a second cold storage read (2,100 gas).
///
///      The owner signs operations over `MessageHashUtils.toEthSignedMessageHash(userOpHash)`
///      (EIP-191, what `personal_sign` of the 32-byte hash produces), so browser wallets can sign
///      them. A validator module gets the userOpHash itself and defines what its keys sign (the
///      {SessionKeyValidator} binds its own data to it).
///
///      ERC-1271: a 65-byte signature is checked against the owner over the hash as given; longer
///      signatures are `validator address ‖ inner signature` and go to that installed validator.
///      The owner's ERC-1271 answer is not bound to this account, so a contract that accepts it
///      must put the account into what is signed. (The {SessionKeyValidator} does not ask this
///      account at all: it checks grants and revocations against the owner named at install.)
contract ValetAccount is AccountERC7579, SignerECDSA, ERC721Holder, ERC1155Holder, Initializable {
    /// @notice The {SessionKeyValidator} every account of this implementation starts with.
    address public immutable sessionValidator;

    /// @notice The owner address given to {initialize} is zero.
    error ZeroOwner();

    /// @notice The implementation is never initialised; clones are, once, by the factory.
    /// @param validator The {SessionKeyValidator} installed by {initialize} (zero: none).
    constructor(address validator) SignerECDSA(address(0)) {
        sessionValidator = validator;
        _disableInitializers();
    }

    /// @notice Sets the owner and installs the {SessionKeyValidator} with the owner as the one who
    ///         grants and revokes sessions.
    /// @param initialOwner The account's ECDSA owner.
    function initialize(address initialOwner) external initializer {
        if (initialOwner == address(0)) revert ZeroOwner();
        _setSigner(initialOwner);
        if (sessionValidator != address(0)) {
            _installModule(MODULE_TYPE_VALIDATOR, sessionValidator, abi.encode(initialOwner));
        }
    }

    /// @notice EntryPoint v0.7 at its canonical address.
    function entryPoint() public pure override returns (IEntryPoint) {
        return IEntryPoint(0x0000000071727De22E5E9d8BAf0edAc6f37da032);
    }

    /// @notice The owner: the one key that may sign operations and grants for this account.
    function owner() external view returns (address) {
        return signer();
    }

    /// @inheritdoc AccountERC7579
    function accountId() public pure override returns (string memory) {
        return "valet.ValetAccount.v0.2.0";
    }

    /// @notice ERC-1271: 65 bytes are the owner's ECDSA signature over `hash`; anything longer is
    ///         `validator ‖ signature` for an installed validator module.
    function isValidSignature(bytes32 hash, bytes calldata signature) public view override returns (bytes4) {
        if (signature.length == 65) {
            return _rawSignatureValidation(hash, signature) ? this.isValidSignature.selector : bytes4(0xffffffff);
        }
        return super.isValidSignature(hash, signature);
    }

    /// @dev As AccountERC7579 (the nonce key's validator if installed, else the owner), except
    ///      that the {sessionValidator} checks its own installation (see the contract notes), and
    ///      that the operation goes to the validator as this call's own calldata with only the
    ///      selector swapped, instead of being ABI-encoded again: ~1,000 gas less on every
    ///      module-validated operation (measured by the gas table).
    function _validateUserOp(PackedUserOperation calldata userOp, bytes32 userOpHash, bytes calldata signature)
        internal
        override
        returns (uint256)
    {
        address module = _extractUserOpValidator(userOp);
        if (module == sessionValidator && module != address(0)) return _forwardToValidator(module);
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

    /// @dev The owner signs operations over the EIP-191 form of `userOpHash`.
    function _signableUserOpHash(PackedUserOperation calldata, bytes32 userOpHash)
        internal
        pure
        override
        returns (bytes32)
    {
        return MessageHashUtils.toEthSignedMessageHash(userOpHash);
    }

    /// @dev The owner's ECDSA check (AccountERC7579 alone would refuse everything).
    function _rawSignatureValidation(bytes32 hash, bytes calldata signature)
        internal
        view
        override(AccountERC7579, SignerECDSA)
        returns (bool)
    {
        return SignerECDSA._rawSignatureValidation(hash, signature);
    }
}
