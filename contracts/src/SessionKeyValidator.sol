// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC7579Validator, MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SessionLib} from "./libraries/SessionLib.sol";
import {ExecutionLib} from "./libraries/ExecutionLib.sol";

/// @title SessionKeyValidator
/// @notice An ERC-7579 validator module that lets a session key act for an account within the
///         limits the account's owner granted: which contracts and functions, which argument
///         values, how long, how much, how often, and how much of the account's ETH may go to
///         network fees. Any ERC-7579 account can install it.
///
/// @dev **Owner.** Installing the module names the owner whose signature grants and revokes
///      sessions: `onInstall(abi.encode(owner))`. Grants and revocations are checked against that
///      owner alone — an ECDSA signature (65 bytes, low s), or, for an owner that is a contract,
///      its ERC-1271 answer — never against the account's own ERC-1271, which an ERC-7579 account
///      routes to whichever validator module a signature names.
///
///      **Grant.** The owner signs the EIP-712 digest of `Grant(address account, Session session)`
///      (domain: name "Valet", version "1", this chain, this contract). A session is enabled either
///      inside its first use (the session and the grant ride in the operation's signature) or by
///      the account calling {enableSession}.
///
///      **Multichain grant.** One owner signature may grant sessions on several chains: the owner
///      signs `MultichainGrant(ChainGrant[] grants)`, each entry `ChainGrant(uint256 chainId,
///      address validator, address account, Session session)`, under a domain of name "Valet" and
///      version "1" only. A chain's validator accepts it only through an entry it computes itself
///      from `block.chainid`, its own address, the account and the session in the operation; the
///      operation carries the other entries' struct hashes and its entry's position. Each chain's
///      session is its own (its own epoch, counters, limits and revocation).
///
///      **Use.** The operation's nonce key selects this validator; its signature is
///      `mode (1) ‖ session length (2) ‖ session ‖ claimedTime (6) ‖ call count n (1) ‖
///      permission index per call (n) ‖ [grant length (2) ‖ grant, modes 1 and 2] ‖
///      session key signature (65)`, mode 0 = use, 1 = enable and use, 2 = enable with a
///      multichain grant and use. In mode 1 the grant is the owner's signature; in mode 2 it is
///      `chain count K (1) ‖ this chain's position p (1) ‖ the other K - 1 entries' struct hashes
///      (32 each, in order) ‖ the owner's signature`. The session key signs
///      `keccak256(userOpHash ‖ sessionId ‖ claimedTime ‖ n ‖ indices)` (raw ECDSA, low s), so
///      no relayer can re-point a call at another permission or the operation at another session.
///      Each call must satisfy the permission its index names: target, selector, value cap, every
///      rule. `claimedTime` places the operation in a period of each periodic allowance it
///      spends from; the period's window is returned in validationData, so the EntryPoint refuses
///      the operation outside it. Time is never read here (ERC-7562 bans TIMESTAMP in validation):
///      the session's window, narrowed by periods, goes out in validationData, and no window can
///      end at 0, which the EntryPoint would read as "no expiry" (validAfter is at least 1).
///
///      **Fees.** The key holder chooses every field of the operation, fees included, and may
///      submit it itself with any beneficiary. Whatever the account may pay for an operation — its
///      maximum cost, `(verificationGasLimit + callGasLimit + paymasterVerificationGasLimit +
///      paymasterPostOpGasLimit + preVerificationGas) × maxFeePerGas`, when no paymaster pays — is
///      counted against the session's `feeBudget` (and any fee limits, which may refill per period)
///      before the EntryPoint takes it. A session with no fee budget can only be used through a
///      paymaster (one of its listed `paymasters`, if it lists any): it never spends the account's
///      ETH on fees.
///
///      **Revocation.** One session by id ({revokeSession}), or all at once: {revokeAllSessions}
///      moves the account to a new, unpredictable epoch. Every session is used and granted under
///      the epoch it names, so the move ends every enabled session and every grant signed before
///      it, whatever the key holders do; nothing needs listing, so nothing can block it. The epoch
///      derives from the previous block's hash, so no grant can be signed for it in advance.
///      Uninstalling moves the epoch too.
///
///      **Storage** is account-associated (the account is the innermost mapping key), as ERC-7562
///      requires of a module's storage during validation.
///
///      **Counters** (session uses, permission uses, limit and fee spending) are updated during
///      validation. If the execution then reverts they stay spent, exactly like the nonce: the
///      operation was authorised and paid for. Off-chain pre-flight (valet-core's evaluator) keeps
///      this rare.
///
///      **Failures.** A session key signature that does not match returns SIG_VALIDATION_FAILED
///      (as ERC-4337 requires, so bundlers can estimate gas with a dummy signature). Everything
///      else reverts with a custom error naming the offending values — unknown, revoked, voided or
///      exhausted sessions, calls outside the session, fees above the budget, malformed encodings,
///      a bad grant signature — because those are not signature mismatches, a revert carries its
///      reason to the bundler's answer (AA23), and the operation is refused either way.
///
///      **Never allowed**, whatever a session says: calls to the account itself (module
///      management, upgrades, `execute` re-entry), to this validator, or to a canonical
///      EntryPoint (v0.6 to v0.9: the account's deposit and stake live there), delegatecall and
///      every execution mode other than single and batch with the default exec type, and ERC-1271
///      signatures by session keys ({isValidSignatureWithSender} always says no: a session key
///      signing arbitrary messages, such as permits, would escape every limit).
contract SessionKeyValidator is IERC7579Validator, EIP712 {
    using SessionLib for bytes;

    /// @notice Where a session stands for an account ({sessionState}). Storage holds None,
    ///         Enabled and Revoked; Voided and NotInstalled are read from the account's state.
    enum SessionState {
        /// Never enabled: its grant may enable it.
        None,
        /// Enabled and usable (within its window, uses, limits and fee budget).
        Enabled,
        /// Revoked by id, for good.
        Revoked,
        /// Granted under another epoch: all sessions were revoked, or the module uninstalled, since.
        Voided,
        /// This module is not installed on the account now.
        NotInstalled
    }

    /// @dev What one operation's validation carries from check to check. {_matchCall} reads and
    ///      writes these fields by their memory offsets (32 bytes each, in this order), so the
    ///      order is part of the code: account 0x00, id 0x20, word 0x40, calls 0x60, indices 0x80,
    ///      claimedTime 0xa0, validAfter 0xc0, validUntil 0xe0, spend 0x100, failure 0x120, its
    ///      values 0x140 and 0x160, the offset of the call's permission 0x180, the state word's
    ///      storage slot 0x1a0 (0 until loaded), the offset of the permission count 0x1c0, the
    ///      offset of the limit count 0x1e0, the operation's fee 0x200 and its paymaster 0x220.
    struct Use {
        address account;
        bytes32 id;
        uint256 word;
        uint256 calls;
        bytes32 indices;
        uint48 claimedTime;
        uint48 validAfter;
        uint48 validUntil;
        uint256[] spend;
        uint256 failure;
        uint256 failure1;
        uint256 failure2;
        uint256 permission;
        uint256 slot;
        uint256 permissions;
        uint256 limits;
        uint256 fee;
        address paymaster;
    }

    uint8 internal constant MODE_USE = 0;
    uint8 internal constant MODE_ENABLE = 1;
    uint8 internal constant MODE_ENABLE_MULTICHAIN = 2;
    /// @dev Most chains one multichain grant may list.
    uint256 internal constant MAX_CHAINS = 32;
    uint256 internal constant KEY_SIGNATURE_LENGTH = 65;

    // The session word: state (8 bits) | session uses (24) | uses of permission k (16 each,
    // k = 0..8) | wei spent on fees (80).
    uint256 internal constant STATE_MASK = 0xff;
    uint256 internal constant STATE_ENABLED = 1;
    uint256 internal constant STATE_REVOKED = 2;
    uint256 internal constant SESSION_USES_SHIFT = 8;
    uint256 internal constant SESSION_USES_MASK = 0xffffff;
    uint256 internal constant PERMISSION_USES_SHIFT = 32;
    uint256 internal constant PERMISSION_USES_BITS = 16;
    uint256 internal constant PERMISSION_USES_MASK = 0xffff;
    uint256 internal constant FEES_SHIFT = 176;

    // The account word: owner (bits 0..159) | epoch (160..223) | installed (bit 255).
    uint256 internal constant OWNER_MASK = type(uint160).max;
    uint256 internal constant EPOCH_SHIFT = 160;
    uint256 internal constant EPOCH_MASK = type(uint64).max;
    uint256 internal constant INSTALLED = 1 << 255;

    bytes32 internal constant GRANT_TYPEHASH = keccak256(
        "Grant(address account,Session session)"
        "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
        "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
        "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
    );
    bytes32 internal constant CHAIN_GRANT_TYPEHASH = keccak256(
        "ChainGrant(uint256 chainId,address validator,address account,Session session)"
        "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
        "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
        "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
    );
    bytes32 internal constant MULTICHAIN_GRANT_TYPEHASH = keccak256(
        "MultichainGrant(ChainGrant[] grants)"
        "ChainGrant(uint256 chainId,address validator,address account,Session session)"
        "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
        "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
        "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
    );
    /// @dev The multichain grant's domain: name "Valet", version "1" and nothing else, because one
    ///      signature serves several chains (and each chain's validator). What a single-chain
    ///      domain binds, each {CHAIN_GRANT_TYPEHASH} entry binds instead.
    bytes32 internal constant MULTICHAIN_DOMAIN_SEPARATOR = keccak256(
        abi.encode(keccak256("EIP712Domain(string name,string version)"), keccak256("Valet"), keccak256("1"))
    );
    bytes32 internal constant REVOKE_SESSION_TYPEHASH = keccak256("RevokeSession(address account,bytes32 sessionId)");
    bytes32 internal constant REVOKE_ALL_TYPEHASH = keccak256("RevokeAllSessions(address account,uint64 epoch)");

    /// @dev State word of each session (layout above).
    mapping(bytes32 sessionId => mapping(address account => uint256)) internal _sessionWords;
    /// @dev Per limit (key = keccak(sessionId, index)): spent (low 128 bits) | period index (high 128).
    mapping(bytes32 limitKey => mapping(address account => uint256)) internal _limitWords;
    /// @dev The account word (layout above). Read by every operation: it carries the epoch that
    ///      revoke-all moves and the installed bit, and (for grants) the owner.
    mapping(address account => uint256) internal _accountWords;

    // ------------------------------------------------------------------ events

    /// @notice The module was installed on `account`, with `owner` signing its grants.
    event Installed(address indexed account, address indexed owner);
    /// @notice The module was uninstalled from `account` (every session and grant is void).
    event Uninstalled(address indexed account);
    /// @notice A session was enabled for `account`.
    event SessionEnabled(
        address indexed account, bytes32 indexed sessionId, address indexed sessionKey, uint48 validAfter, uint48 validUntil
    );
    /// @notice A session was revoked for `account` (it may never have been enabled).
    event SessionRevoked(address indexed account, bytes32 indexed sessionId);
    /// @notice `account` moved to epoch `epoch`: every session enabled and every grant signed under
    ///         an earlier epoch is void (a revoke-all, or uninstalling).
    event SessionsVoided(address indexed account, uint64 epoch);

    // ------------------------------------------------------------------ errors

    /// @notice The operation's signature is malformed at byte `offset`.
    error MalformedSignature(uint256 offset, string reason);
    /// @notice The signature's first byte is not 0 (use), 1 (enable and use) or 2 (enable with a
    ///         multichain grant and use).
    error UnknownSignatureMode(uint8 mode);
    /// @notice `onInstall` data must be `abi.encode(owner)` with a nonzero owner.
    error InvalidInstallData(bytes data);
    /// @notice The module is installed on `account` already.
    error AlreadyInstalled(address account);
    /// @notice The module is not installed on `account`: no session can be used or enabled.
    error NotInstalled(address account);
    /// @notice The session was granted under epoch `sessionEpoch`, but the account is at
    ///         `accountEpoch`: all its sessions were revoked (or the module reinstalled) since.
    error SessionEpochMismatch(bytes32 sessionId, uint64 sessionEpoch, uint64 accountEpoch);
    /// @notice The owner's signature over `digest` (a revoke) is not valid.
    error InvalidOwnerSignature(address account, bytes32 digest);
    /// @notice The session is not enabled for this account: enable it (mode 1) first.
    error SessionNotEnabled(bytes32 sessionId);
    /// @notice The session is enabled already: use mode 0.
    error SessionAlreadyEnabled(bytes32 sessionId);
    /// @notice The session was revoked.
    error SessionIsRevoked(bytes32 sessionId);
    /// @notice The owner's grant signature for the session is not valid.
    error InvalidGrantSignature(address account, bytes32 sessionId);
    /// @notice The signature names `indices` permissions for `calls` calls.
    error CallCountMismatch(uint256 calls, uint256 indices);
    /// @notice Call `callIndex` targets the account itself, this validator or an EntryPoint.
    error ForbiddenTarget(uint256 callIndex, address target);
    /// @notice Call `callIndex` names permission `permissionIndex`, but the session has `count`.
    error PermissionIndexOutOfRange(uint256 callIndex, uint256 permissionIndex, uint256 count);
    /// @notice Call `callIndex` (`target`, `selector`) is not what permission `permissionIndex` allows.
    error CallNotPermitted(uint256 callIndex, uint256 permissionIndex, address target, bytes4 selector);
    /// @notice Call `callIndex` sends `value`, above the permission's `valueLimit`.
    error ValueLimitExceeded(uint256 callIndex, uint256 permissionIndex, uint256 value, uint256 valueLimit);
    /// @notice Call `callIndex` has no ABI word `argIndex` for rule `ruleIndex`.
    error ArgumentMissing(uint256 callIndex, uint256 permissionIndex, uint256 ruleIndex, uint256 argIndex);
    /// @notice Call `callIndex`'s word `argIndex` = `value` breaks rule `ruleIndex` of permission `permissionIndex`.
    error RuleViolated(
        uint256 callIndex, uint256 permissionIndex, uint256 ruleIndex, uint256 argIndex, uint256 value
    );
    /// @notice The session's `maxUses` operations are used up.
    error SessionUsesExhausted(bytes32 sessionId, uint256 maxUses);
    /// @notice Permission `permissionIndex`'s `maxUses` calls are used up.
    error PermissionUsesExhausted(bytes32 sessionId, uint256 permissionIndex, uint256 maxUses);
    /// @notice Limit `limitIndex` has `spent` of `limit` spent (this period, if periodic); the
    ///         operation would add `amount`.
    error LimitExceeded(bytes32 sessionId, uint256 limitIndex, uint256 spent, uint256 amount, uint256 limit);
    /// @notice Call `callIndex` is an ERC-20 transfer/approve on a limited token but has no amount word.
    error TokenAmountMissing(uint256 callIndex);
    /// @notice `claimedTime` lies before the session's `validAfter`, so it names no period.
    error ClaimedTimeBeforeSession(uint48 claimedTime, uint48 validAfter);
    /// @notice The operation claims period `period` of limit `limitIndex`, but `storedPeriod` has begun.
    error PeriodElapsed(bytes32 sessionId, uint256 limitIndex, uint256 period, uint256 storedPeriod);
    /// @notice The session may not spend the account's ETH on fees (its fee budget is 0): the
    ///         operation must name a paymaster.
    error PaymasterRequired(bytes32 sessionId);
    /// @notice The session's operations have committed `spent` wei of the account's ETH to fees
    ///         of its `budget`; this operation may cost up to `fee` more.
    error FeeBudgetExceeded(bytes32 sessionId, uint256 spent, uint256 fee, uint256 budget);
    /// @notice The operation names `paymaster`, which is not one of the session's paymasters.
    error PaymasterNotAllowed(bytes32 sessionId, address paymaster);
    /// @notice A gas limit, preVerificationGas or maxFeePerGas is above 2^120 - 1 (the EntryPoint
    ///         refuses such operations too, AA94).
    error GasValuesOverflow();

    constructor() EIP712("Valet", "1") {}

    // ------------------------------------------------------------------ ERC-7579 module

    /// @notice Installs the module on the calling account. `data` is `abi.encode(owner)`: the
    ///         one key (or ERC-1271 contract) whose signature grants and revokes sessions. The
    ///         account keeps its epoch across installations, so sessions and grants from an
    ///         earlier installation stay void.
    function onInstall(bytes calldata data) external {
        if (data.length != 32) revert InvalidInstallData(data);
        uint256 owner = uint256(bytes32(data));
        if (owner == 0 || owner > OWNER_MASK) revert InvalidInstallData(data);
        uint256 w = _accountWords[msg.sender];
        if (w & INSTALLED != 0) revert AlreadyInstalled(msg.sender);
        _accountWords[msg.sender] = (w & (EPOCH_MASK << EPOCH_SHIFT)) | INSTALLED | owner;
        emit Installed(msg.sender, address(uint160(owner)));
    }

    /// @notice Uninstalling stops every session and voids every grant of the account at once
    ///         (it moves the epoch); it never fails. `data` is ignored.
    function onUninstall(bytes calldata) external {
        _accountWords[msg.sender] &= ~INSTALLED;
        _newEpoch(msg.sender);
        emit Uninstalled(msg.sender);
    }

    /// @notice Whether the module is installed on `account` (ERC-7579 `isInitialized`).
    function isInitialized(address account) external view returns (bool) {
        return _accountWords[account] & INSTALLED != 0;
    }

    /// @notice This module is a validator (ERC-7579 type 1) only.
    function isModuleType(uint256 moduleTypeId) external pure returns (bool) {
        return moduleTypeId == MODULE_TYPE_VALIDATOR;
    }

    /// @notice Session keys never sign ERC-1271 messages for the account: always `0xffffffff`.
    function isValidSignatureWithSender(address, bytes32, bytes calldata) external pure returns (bytes4) {
        return 0xffffffff;
    }

    // ------------------------------------------------------------------ validation

    /// @notice Validates a session operation for `msg.sender` (the account); see the contract
    ///         notes for the signature layout and which failures revert.
    /// @return validationData The session window (narrowed to the current period of any periodic
    ///         allowance the operation spends from), with the signature-failed flag set when the
    ///         session key's signature does not match.
    function validateUserOp(PackedUserOperation calldata userOp, bytes32 userOpHash)
        external
        returns (uint256 validationData)
    {
        bytes calldata sig = userOp.signature;
        Use memory use;
        use.account = msg.sender;
        (bytes calldata session, uint256 mode, uint256 o) = _readSignature(sig, use);
        uint256 accountWord = _accountWords[msg.sender];
        if (accountWord & INSTALLED == 0) revert NotInstalled(msg.sender);
        o = _authorize(use, session, sig, mode, o, accountWord);
        if (sig.length != o + KEY_SIGNATURE_LENGTH) revert MalformedSignature(o, "session key signature not 65 bytes");

        _readFee(use, userOp);
        uint256 before = use.word;
        _checkCalls(use, userOp.callData, session);
        _chargeFee(use, session);
        if (use.word != before) _storeWord(use);

        bool sigFailed = _recover(_keyDigest(userOpHash, use, sig, 3 + session.length), sig, o) != session.sessionKey();
        return (sigFailed ? 1 : 0) | (uint256(use.validUntil) << 160) | (uint256(use.validAfter) << 208);
    }

    /// @dev Splits the operation signature (layout in the contract notes) into the session, the
    ///      mode and the offset just past the permission indices; fills `use` with the session id,
    ///      claimedTime, the call count, the indices and the session's window.
    function _readSignature(bytes calldata sig, Use memory use)
        internal
        pure
        returns (bytes calldata session, uint256 mode, uint256 o)
    {
        uint256 bad; // 1: the signature is cut short; 2: the call count is not 1..32
        session = sig[0:0];
        assembly ("memory-safe") {
            let size := sig.length
            let head := calldataload(sig.offset)
            mode := shr(248, head)
            let len := and(shr(232, head), 0xffff)
            o := add(3, len)
            // header (3) ‖ session ‖ claimedTime (6) ‖ call count (1) must fit, and so must the
            // session's fixed header.
            switch or(lt(size, add(o, 7)), lt(len, 58))
            case 1 { bad := 1 }
            default {
                session.offset := add(sig.offset, 3)
                session.length := len
                let tail := calldataload(add(sig.offset, o))
                let calls := and(shr(200, tail), 0xff)
                o := add(o, 7)
                switch or(iszero(calls), gt(calls, 32))
                case 1 { bad := 2 }
                default { if lt(size, add(o, calls)) { bad := 1 } }
                if iszero(bad) {
                    // session id: keccak256 of the session bytes, hashed in free memory.
                    let m := mload(0x40)
                    calldatacopy(m, session.offset, len)
                    mstore(add(use, 0x20), keccak256(m, len)) // use.id
                    mstore(add(use, 0x60), calls) // use.calls
                    // use.indices: one byte per call, left-aligned.
                    mstore(add(use, 0x80), and(calldataload(add(sig.offset, o)), not(shr(shl(3, calls), not(0)))))
                    mstore(add(use, 0xa0), shr(208, tail)) // use.claimedTime
                    let window := calldataload(add(session.offset, 20))
                    mstore(add(use, 0xc0), shr(208, window)) // use.validAfter
                    mstore(add(use, 0xe0), and(shr(160, window), 0xffffffffffff)) // use.validUntil
                    o := add(o, calls)
                }
            }
        }
        if (bad == 1) revert MalformedSignature(sig.length, "header, session, claimedTime or call indices cut short");
        if (bad == 2) revert MalformedSignature(o - 1, "not 1..32 calls");
    }

    /// @dev Writes back the session's state word (counters), to the slot loaded in {_authorize}
    ///      or, for a session enabled in this operation, to `_sessionWords[id][account]`.
    function _storeWord(Use memory use) internal {
        uint256 slot = use.slot;
        if (slot == 0) {
            _sessionWords[use.id][use.account] = use.word;
            return;
        }
        uint256 word = use.word;
        assembly ("memory-safe") {
            sstore(slot, word)
        }
    }

    /// @dev What the session key signs: `keccak256(hash ‖ sessionId ‖ claimedTime ‖ call count ‖
    ///      permission indices)`, the last three as they stand in the signature from `from`.
    ///      `hash` (the userOpHash, as the account passes it) does not cover the signature, so
    ///      without this a relayer could name another session of the same key, or another
    ///      permission that also allows a call, and spend counts the key never chose.
    function _keyDigest(bytes32 hash, Use memory use, bytes calldata sig, uint256 from)
        internal
        pure
        returns (bytes32 digest)
    {
        bytes32 id = use.id;
        uint256 len = 7 + use.calls; // claimedTime (6) ‖ call count (1) ‖ indices: at most 39 bytes
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, hash)
            mstore(add(m, 0x20), id)
            // Two words from `from`; the hash covers only the tail's `len` bytes.
            mstore(add(m, 0x40), calldataload(add(sig.offset, from)))
            mstore(add(m, 0x60), calldataload(add(sig.offset, add(from, 0x20))))
            digest := keccak256(m, add(0x40, len))
        }
    }

    /// @dev ECDSA recovery of the 65-byte signature at `sig[o:]` over `hash`; zero for a
    ///      malleable (high-s) or otherwise invalid signature. Inline because OpenZeppelin's
    ///      general-purpose version costs ~500 gas more on this path.
    function _recover(bytes32 hash, bytes calldata sig, uint256 o) internal view returns (address signer) {
        assembly ("memory-safe") {
            let p := add(sig.offset, o)
            let s := calldataload(add(p, 32))
            // s must be in the lower half order (EIP-2); v is the 65th byte.
            if iszero(gt(s, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)) {
                let m := mload(0x40)
                mstore(m, hash)
                mstore(add(m, 0x20), byte(0, calldataload(add(p, 64))))
                mstore(add(m, 0x40), calldataload(p))
                mstore(add(m, 0x60), s)
                if staticcall(gas(), 1, m, 0x80, 0x00, 0x20) {
                    signer := mul(mload(0x00), eq(returndatasize(), 0x20))
                }
            }
        }
    }

    // ------------------------------------------------------------------ account actions

    /// @notice Enables `session` for the calling account without a grant signature: the account
    ///         calling is the authorisation (its owner signed that operation).
    /// @return id The session's id.
    function enableSession(bytes calldata session) external returns (bytes32 id) {
        address account = msg.sender;
        uint256 accountWord = _accountWords[account];
        if (accountWord & INSTALLED == 0) revert NotInstalled(account);
        id = keccak256(session);
        session.checkEncoding();
        _checkEnableable(session, id, _sessionWords[id][account], accountWord);
        _markEnabled(account, session, id);
    }

    /// @notice Revokes one session of the calling account, enabled or not yet: its grant can
    ///         never enable it again.
    function revokeSession(bytes32 id) external {
        _revoke(msg.sender, id);
    }

    /// @notice Revokes every session of the calling account and voids every grant signed before:
    ///         the account moves to a new epoch, which nothing signed earlier can name. Nothing
    ///         needs listing, so no key holder can make it fail.
    function revokeAllSessions() external {
        _newEpoch(msg.sender);
    }

    /// @notice Revokes a session with the owner's signature over {revokeSessionDigest}: anyone (a
    ///         relayer, the app) may submit it.
    function revokeSessionWithSignature(address account, bytes32 id, bytes calldata signature) external {
        bytes32 digest = revokeSessionDigest(account, id);
        if (!_isOwnerSignature(_accountWords[account], account, digest, signature)) {
            revert InvalidOwnerSignature(account, digest);
        }
        _revoke(account, id);
    }

    /// @notice {revokeAllSessions} with the owner's signature over {revokeAllSessionsDigest} (for
    ///         the account's current epoch, so it works once): anyone may submit it.
    function revokeAllSessionsWithSignature(address account, bytes calldata signature) external {
        bytes32 digest = revokeAllSessionsDigest(account);
        if (!_isOwnerSignature(_accountWords[account], account, digest, signature)) {
            revert InvalidOwnerSignature(account, digest);
        }
        _newEpoch(account);
    }

    // ------------------------------------------------------------------ views

    /// @notice The id of a session: `keccak256` of its packed encoding.
    function sessionId(bytes calldata session) external pure returns (bytes32) {
        return keccak256(session);
    }

    /// @notice Reverts with {SessionLib.MalformedSession} unless `session` is well formed.
    function checkSessionEncoding(bytes calldata session) external pure {
        session.checkEncoding();
    }

    /// @notice The EIP-712 digest the owner signs to grant `session` to `account`.
    function grantDigest(address account, bytes calldata session) public view returns (bytes32) {
        session.checkEncoding();
        return _hashTypedDataV4(keccak256(abi.encode(GRANT_TYPEHASH, account, session.hashStruct())));
    }

    /// @notice This chain's entry of a multichain grant of `session` to `account`: the struct hash
    ///         of `ChainGrant(block.chainid, this validator, account, session)`.
    ///         Reverts with {SessionLib.MalformedSession} for a malformed session.
    function chainGrantHash(address account, bytes calldata session) external view returns (bytes32) {
        session.checkEncoding();
        return _chainGrantHash(account, session);
    }

    /// @dev {chainGrantHash} of a session whose encoding was checked.
    function _chainGrantHash(address account, bytes calldata session) internal view returns (bytes32) {
        return keccak256(abi.encode(CHAIN_GRANT_TYPEHASH, block.chainid, address(this), account, session.hashStruct()));
    }

    /// @notice The EIP-712 digest the owner signs to grant sessions on several chains at once:
    ///         `MultichainGrant(chainGrants)`, the entries' struct hashes in the order signed.
    function multichainGrantDigest(bytes32[] calldata chainGrants) external pure returns (bytes32) {
        return _multichainGrantDigest(keccak256(abi.encodePacked(chainGrants)));
    }

    /// @dev The multichain digest of the entries whose concatenated struct hashes hash to `list`.
    function _multichainGrantDigest(bytes32 list) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(MULTICHAIN_GRANT_TYPEHASH, list));
        return keccak256(abi.encodePacked(hex"1901", MULTICHAIN_DOMAIN_SEPARATOR, structHash));
    }

    /// @notice The EIP-712 digest the owner signs to revoke one session.
    function revokeSessionDigest(address account, bytes32 id) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVOKE_SESSION_TYPEHASH, account, id)));
    }

    /// @notice The EIP-712 digest the owner signs to revoke every session: bound to the account's
    ///         current epoch, so a relayer can submit it once and never replay it.
    function revokeAllSessionsDigest(address account) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVOKE_ALL_TYPEHASH, account, accountEpoch(account))));
    }

    /// @notice The account's epoch: new grants must carry it. It changes, to a value no one can
    ///         know in advance, on every revoke-all and uninstall.
    function accountEpoch(address account) public view returns (uint64) {
        return uint64(_accountWords[account] >> EPOCH_SHIFT);
    }

    /// @notice Whose signature grants and revokes the account's sessions (zero if the module was
    ///         never installed).
    function accountOwner(address account) external view returns (address) {
        return address(uint160(_accountWords[account]));
    }

    /// @notice Where `session` stands for `account`, how many operations it has made and how much
    ///         of the account's ETH they committed to fees. Reverts with
    ///         {SessionLib.MalformedSession} for a malformed session.
    function sessionState(address account, bytes calldata session)
        external
        view
        returns (SessionState state, uint256 uses, uint256 feesSpent)
    {
        session.checkEncoding();
        uint256 word = _sessionWords[keccak256(session)][account];
        uint256 accountWord = _accountWords[account];
        uint256 stored = word & STATE_MASK;
        if (accountWord & INSTALLED == 0) state = SessionState.NotInstalled;
        else if (stored == STATE_REVOKED) state = SessionState.Revoked;
        else if (session.epoch() != uint64(accountWord >> EPOCH_SHIFT)) state = SessionState.Voided;
        else state = SessionState(stored);
        uses = (word >> SESSION_USES_SHIFT) & SESSION_USES_MASK;
        feesSpent = word >> FEES_SHIFT;
    }

    /// @notice Whether session `id` was revoked on `account` by id (a revoke-all or an uninstall
    ///         voids sessions without marking each: see {sessionState}).
    function isRevoked(address account, bytes32 id) external view returns (bool) {
        return _sessionWords[id][account] & STATE_MASK == STATE_REVOKED;
    }

    /// @notice How many calls permission `permissionIndex` (0..8) of the session has made.
    function permissionUses(address account, bytes32 id, uint256 permissionIndex) external view returns (uint256) {
        if (permissionIndex >= SessionLib.MAX_COUNTED_PERMISSIONS) return 0;
        return (_sessionWords[id][account] >> (PERMISSION_USES_SHIFT + PERMISSION_USES_BITS * permissionIndex))
            & PERMISSION_USES_MASK;
    }

    /// @notice What limit `limitIndex` of the session has spent, and in which period (0 for a
    ///         whole-session limit). For a periodic limit, the spent amount is that period's.
    function limitUsage(address account, bytes32 id, uint256 limitIndex)
        external
        view
        returns (uint256 spent, uint256 period)
    {
        uint256 w = _limitWords[_limitKey(id, limitIndex)][account];
        return (w & type(uint128).max, w >> 128);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Enables the session (mode 1) or checks it is usable (mode 0); loads its state word
    ///      into `use`. Returns the offset of the session key signature.
    function _authorize(
        Use memory use,
        bytes calldata session,
        bytes calldata sig,
        uint256 mode,
        uint256 o,
        uint256 accountWord
    ) internal returns (uint256) {
        if (mode == MODE_USE) {
            // The state word's slot, `_sessionWords[id][account]`, computed once for the load here
            // and the store after the checks.
            bytes32 id = use.id;
            address account = use.account;
            uint256 word;
            uint256 slot;
            assembly ("memory-safe") {
                mstore(0x00, id)
                mstore(0x20, _sessionWords.slot)
                mstore(0x20, keccak256(0x00, 0x40))
                mstore(0x00, account)
                slot := keccak256(0x00, 0x40)
                word := sload(slot)
            }
            use.word = word;
            use.slot = slot;
            uint256 state = word & STATE_MASK;
            if (state == STATE_REVOKED) revert SessionIsRevoked(id);
            uint64 current = uint64(accountWord >> EPOCH_SHIFT);
            if (session.epoch() != current) revert SessionEpochMismatch(id, session.epoch(), current);
            if (state != STATE_ENABLED) revert SessionNotEnabled(id);
            return o;
        }
        if (mode != MODE_ENABLE && mode != MODE_ENABLE_MULTICHAIN) revert UnknownSignatureMode(uint8(mode));
        if (sig.length < o + 2) revert MalformedSignature(sig.length, "grant length cut short");
        uint256 grantEnd = o + 2 + (SessionLib.word(sig, o) >> 240);
        if (sig.length < grantEnd) revert MalformedSignature(sig.length, "grant signature cut short");
        use.word = _enable(use.account, session, use.id, sig[o + 2:grantEnd], o + 2, mode, accountWord);
        return grantEnd;
    }

    /// @dev Enables the session with the owner's grant: a signature over the single-chain digest
    ///      (mode 1) or a multichain proof and a signature over the multichain digest (mode 2).
    ///      `at` is the grant's offset in the operation signature, for error offsets.
    function _enable(
        address account,
        bytes calldata session,
        bytes32 id,
        bytes calldata grant,
        uint256 at,
        uint256 mode,
        uint256 accountWord
    ) internal returns (uint256 word) {
        session.checkEncoding();
        _checkEnableable(session, id, _sessionWords[id][account], accountWord);
        bytes32 digest;
        if (mode == MODE_ENABLE) {
            digest = _hashTypedDataV4(keccak256(abi.encode(GRANT_TYPEHASH, account, session.hashStruct())));
        } else {
            (digest, grant) = _multichainDigest(account, session, grant, at);
        }
        if (!_isOwnerSignature(accountWord, account, digest, grant)) revert InvalidGrantSignature(account, id);
        return _markEnabled(account, session, id);
    }

    /// @dev The multichain digest a mode-2 grant proves, and the owner's signature after the proof.
    ///      The proof is `K (1) ‖ p (1) ‖ K - 1 struct hashes`: the list the owner signed, with
    ///      this chain's entry left out at position `p`. The entry is computed here from
    ///      `block.chainid`, this validator, the account and the session, so a list that does not
    ///      hold exactly that entry gives another digest, which the owner never signed.
    function _multichainDigest(address account, bytes calldata session, bytes calldata grant, uint256 at)
        internal
        view
        returns (bytes32 digest, bytes calldata signature)
    {
        if (grant.length < 2) revert MalformedSignature(at, "chain count and position cut short");
        uint256 chains = uint8(grant[0]);
        uint256 position = uint8(grant[1]);
        if (chains == 0 || chains > MAX_CHAINS) revert MalformedSignature(at, "not 1..32 chains");
        if (position >= chains) revert MalformedSignature(at + 1, "chain position not below the chain count");
        uint256 proofEnd = 2 + 32 * (chains - 1);
        if (grant.length < proofEnd) revert MalformedSignature(at + grant.length, "chain grants cut short");
        uint256 split = 2 + 32 * position;
        bytes32 own = _chainGrantHash(account, session);
        bytes32 list = keccak256(bytes.concat(grant[2:split], own, grant[split:proofEnd]));
        digest = _multichainGrantDigest(list);
        signature = grant[proofEnd:];
    }

    /// @dev A session can be enabled once, under the account's current epoch, unless revoked.
    function _checkEnableable(bytes calldata session, bytes32 id, uint256 word, uint256 accountWord) internal pure {
        if (word & STATE_MASK == STATE_REVOKED) revert SessionIsRevoked(id);
        uint64 current = uint64(accountWord >> EPOCH_SHIFT);
        if (session.epoch() != current) revert SessionEpochMismatch(id, session.epoch(), current);
        if (word != 0) revert SessionAlreadyEnabled(id);
    }

    function _markEnabled(address account, bytes calldata session, bytes32 id) internal returns (uint256 word) {
        word = STATE_ENABLED;
        _sessionWords[id][account] = word;
        emit SessionEnabled(account, id, session.sessionKey(), session.validAfter(), session.validUntil());
    }

    /// @dev Whether `signature` over `digest` is the owner's, the owner being the one named when
    ///      the module was installed (in `accountWord`): an ECDSA signature by that key, or, if the
    ///      owner is a contract other than the account, its ERC-1271 answer. The account's own
    ///      ERC-1271 is never asked: an ERC-7579 account hands a signature to whichever installed
    ///      validator it names, so any of them could otherwise grant sessions.
    function _isOwnerSignature(uint256 accountWord, address account, bytes32 digest, bytes calldata signature)
        internal
        view
        returns (bool)
    {
        address owner = address(uint160(accountWord));
        if (owner == address(0)) return false;
        if (signature.length == KEY_SIGNATURE_LENGTH && _recover(digest, signature, 0) == owner) return true;
        if (owner == account || owner.code.length == 0) return false;
        (bool ok, bytes memory ret) = owner.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, signature)));
        return ok && ret.length >= 32 && bytes4(abi.decode(ret, (bytes32))) == IERC1271.isValidSignature.selector;
    }

    /// @dev What the account may pay for the operation: nothing when a paymaster pays (it is
    ///      recorded for {_chargeFee}); else the EntryPoint's required prefund, the most it can
    ///      take — every gas limit, paymaster ones included, plus preVerificationGas, at
    ///      maxFeePerGas.
    ///
    ///      Assembly, reading the operation's fields at their ABI offsets (the EntryPoint encodes
    ///      the operation for the account, which forwards it unchanged), because every session
    ///      operation pays for this and the checked Solidity costs several hundred gas more.
    ///      The EntryPoint refuses gas values above 2^120 - 1 (AA94) before the account is
    ///      called; the same bound is checked here, so the sum and product cannot overflow.
    function _readFee(Use memory use, PackedUserOperation calldata userOp) internal pure {
        bool tooLarge;
        assembly ("memory-safe") {
            // PackedUserOperation head: accountGasLimits 0x80, preVerificationGas 0xa0,
            // gasFees 0xc0, paymasterAndData's offset 0xe0 (from the struct's start).
            let pmd := add(userOp, calldataload(add(userOp, 0xe0)))
            let length := calldataload(pmd)
            let paymaster := 0
            let paymasterGas := 0
            if iszero(lt(length, 20)) {
                paymaster := shr(96, calldataload(add(pmd, 0x20)))
                if and(iszero(paymaster), iszero(lt(length, 52))) {
                    // paymaster (20) ‖ verification gas limit (16) ‖ postOp gas limit (16)
                    let verification := shr(128, calldataload(add(pmd, 52)))
                    let postOp := shr(128, calldataload(add(pmd, 68)))
                    tooLarge := shr(120, or(verification, postOp))
                    paymasterGas := add(verification, postOp)
                }
            }
            switch paymaster
            case 0 {
                let limits := calldataload(add(userOp, 0x80))
                let verification := shr(128, limits)
                let execution := and(limits, 0xffffffffffffffffffffffffffffffff)
                let pre := calldataload(add(userOp, 0xa0))
                let maxFee := and(calldataload(add(userOp, 0xc0)), 0xffffffffffffffffffffffffffffffff)
                tooLarge := or(tooLarge, shr(120, or(or(verification, execution), or(pre, maxFee))))
                mstore(add(use, 0x200), mul(add(add(verification, execution), add(pre, paymasterGas)), maxFee))
            }
            default { mstore(add(use, 0x220), paymaster) }
        }
        if (tooLarge) revert GasValuesOverflow();
    }

    /// @dev The fee rule, after the calls and limits: an operation through a paymaster must name
    ///      one the session lists (if it lists any); one the account pays for must fit in what is
    ///      left of the fee budget, which it then spends (in the state word's top 80 bits).
    ///      Assembly for the same reason as {_readFee}; {_revertFee} says why it failed.
    function _chargeFee(Use memory use, bytes calldata session) internal pure {
        uint256 failure; // 1 the budget, 2 the paymaster list
        assembly ("memory-safe") {
            let paymaster := mload(add(use, 0x220))
            switch paymaster
            case 0 {
                let fee := mload(add(use, 0x200))
                if fee {
                    let word := mload(add(use, 0x40))
                    let budget := shr(176, calldataload(add(session.offset, 47))) // feeBudget
                    let spent := shr(176, word)
                    // spent > budget only for a word written under another rule: refuse that too.
                    switch or(gt(spent, budget), gt(fee, sub(budget, spent)))
                    // spent + fee <= budget < 2^80: the sum stays in its 80 bits.
                    case 0 { mstore(add(use, 0x40), add(word, shl(176, fee))) }
                    default { failure := 1 }
                }
            }
            default {
                let count := byte(0, calldataload(add(session.offset, 57))) // paymaster count
                if count {
                    failure := 2
                    for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                        if eq(shr(96, calldataload(add(session.offset, add(58, mul(i, 20))))), paymaster) {
                            failure := 0
                            break
                        }
                    }
                }
            }
        }
        if (failure != 0) _revertFee(use, session, failure);
    }

    /// @dev Reverts with the error for a {_chargeFee} failure.
    function _revertFee(Use memory use, bytes calldata session, uint256 failure) internal pure {
        if (failure == 2) revert PaymasterNotAllowed(use.id, use.paymaster);
        uint256 budget = session.feeBudget();
        if (budget == 0) revert PaymasterRequired(use.id);
        revert FeeBudgetExceeded(use.id, use.word >> FEES_SHIFT, use.fee, budget);
    }

    function _checkCalls(Use memory use, bytes calldata callData, bytes calldata session) internal {
        // One operation is one use of the session.
        uint256 sessionMax = session.maxUses();
        if (sessionMax != 0) {
            if ((use.word >> SESSION_USES_SHIFT) & SESSION_USES_MASK >= sessionMax) {
                revert SessionUsesExhausted(use.id, sessionMax);
            }
            use.word += 1 << SESSION_USES_SHIFT;
        }

        uint256 base;
        uint256 limits;
        unchecked {
            base = SessionLib.HEADER_LENGTH + session.paymasterCount() * SessionLib.PAYMASTER_LENGTH;
            limits = SessionLib.word(session, base) >> 248;
            use.limits = base;
            use.permissions = base + 1 + limits * SessionLib.LIMIT_LENGTH;
        }
        if (limits != 0) use.spend = new uint256[](limits);
        (bool batch, bytes calldata exec) = ExecutionLib.executionOf(callData);
        if (!batch) {
            if (use.calls != 1) revert CallCountMismatch(1, use.calls);
            (address target, uint256 value, bytes calldata data) = ExecutionLib.single(exec);
            _checkCall(use, session, 0, target, value, data);
        } else {
            uint256 n = ExecutionLib.batchLength(exec);
            if (use.calls != n) revert CallCountMismatch(n, use.calls);
            uint256 expected = 32 * n;
            for (uint256 i = 0; i < n; ++i) {
                (address target, uint256 value, bytes calldata data, uint256 next) =
                    ExecutionLib.batchCall(exec, i, expected);
                _checkCall(use, session, i, target, value, data);
                expected = next;
            }
            ExecutionLib.checkBatchEnd(exec, expected);
        }

        for (uint256 l = 0; l < limits; ++l) {
            (uint8 kind,,,) = session.limitAt(base, l);
            if (kind == SessionLib.KIND_FEES) use.spend[l] = use.fee;
            if (use.spend[l] != 0) _spend(use, session, l);
        }
    }

    // Failure codes of {_matchCall}.
    uint256 private constant CALL_FORBIDDEN_TARGET = 1;
    uint256 private constant CALL_NO_SUCH_PERMISSION = 2;
    uint256 private constant CALL_NOT_PERMITTED = 3;
    uint256 private constant CALL_VALUE_ABOVE_LIMIT = 4;
    uint256 private constant CALL_ARGUMENT_MISSING = 5;
    uint256 private constant CALL_RULE_VIOLATED = 6;
    uint256 private constant CALL_USES_EXHAUSTED = 7;

    /// @dev Checks call `i` against the permission its index names and counts the use;
    ///      reverts with the exact reason if the call is not allowed.
    function _checkCall(
        Use memory use,
        bytes calldata session,
        uint256 i,
        address target,
        uint256 value,
        bytes calldata data
    ) internal view {
        _matchCall(use, session, i, target, value, data);
        if (use.failure != 0) _revertCall(use, session, i, target, value);
        if (use.spend.length != 0) _addSpend(use, session, i, target, value, data);
    }

    /// @dev The whole per-call check in one pass: forbidden targets, the permission's target and
    ///      selector, its value cap, every rule, and its use count. Counts the use in `use.word`,
    ///      or sets `use.failure` (a code above) and its values `use.failure1..2` for {_revertCall}
    ///      (for a rule: the rule's offset and the argument's value).
    ///
    ///      Assembly because it runs for every call of every operation, and the same steps in
    ///      Solidity cost ~3,800 gas more per call (measured with the gas table); a session
    ///      operation's overhead over an owner operation is what session systems are compared on.
    ///      Session reads stay inside the session: its encoding was checked when it was enabled
    ///      and the bytes here hash to that id. `data` is read only after a bounds check.
    function _matchCall(
        Use memory use,
        bytes calldata session,
        uint256 i,
        address target,
        uint256 value,
        bytes calldata data
    ) internal view {
        assembly ("memory-safe") {
            let k := byte(i, mload(add(use, 0x80)))
            // p: the offset of the permission count, then of permission k, past k permissions of
            // 43 bytes plus their rules (3 bytes plus 32 per value).
            let p := mload(add(use, 0x1c0))
            for {} 1 {} {
                // Never the account itself (module management, upgrades), this validator, or a
                // canonical EntryPoint (v0.6, v0.7, v0.8, v0.9: the account's deposit and stake).
                if or(
                    or(eq(target, mload(use)), eq(target, address())),
                    or(
                        or(
                            eq(target, 0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789),
                            eq(target, 0x0000000071727De22E5E9d8BAf0edAc6f37da032)
                        ),
                        or(
                            eq(target, 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108),
                            eq(target, 0x433709009B8330FDa32311DF1C2AFA402eD8D009)
                        )
                    )
                ) {
                    mstore(add(use, 0x120), 1) // CALL_FORBIDDEN_TARGET
                    break
                }
                {
                    let count := byte(0, calldataload(add(session.offset, p)))
                    if iszero(lt(k, count)) {
                        mstore(add(use, 0x120), 2) // CALL_NO_SUCH_PERMISSION
                        mstore(add(use, 0x140), count)
                        break
                    }
                }
                p := add(p, 1)
                for { let j := 0 } lt(j, k) { j := add(j, 1) } {
                    let rules := byte(0, calldataload(add(session.offset, add(p, 42))))
                    p := add(p, 43)
                    for { let q := 0 } lt(q, rules) { q := add(q, 1) } {
                        p := add(p, add(3, shl(5, byte(2, calldataload(add(session.offset, p))))))
                    }
                }
                {
                    // The permission starts with target (20 bytes) and selector (4 bytes). Selector
                    // 0 allows exactly a plain transfer (empty calldata); any other selector, calls
                    // whose calldata starts with it; 1 to 3 bytes of calldata match nothing.
                    let head := shr(64, calldataload(add(session.offset, p)))
                    let want := and(head, 0xffffffff)
                    let selector := shr(224, calldataload(data.offset))
                    if lt(data.length, 4) { selector := and(selector, not(shr(shl(3, data.length), 0xffffffff))) }
                    let ok := eq(shr(32, head), target)
                    switch want
                    case 0 { ok := and(ok, iszero(data.length)) }
                    default { ok := and(ok, and(iszero(lt(data.length, 4)), eq(selector, want))) }
                    if iszero(ok) {
                        mstore(add(use, 0x120), 3) // CALL_NOT_PERMITTED
                        mstore(add(use, 0x140), shl(224, selector))
                        break
                    }
                }
                {
                    let valueLimit := shr(128, calldataload(add(session.offset, add(p, 24))))
                    if gt(value, valueLimit) {
                        mstore(add(use, 0x120), 4) // CALL_VALUE_ABOVE_LIMIT
                        mstore(add(use, 0x140), valueLimit)
                        break
                    }
                }
                // Rules: arg (1) ‖ op (1) ‖ n (1) ‖ n values; x is ABI word `arg` after the selector.
                let r := add(p, 43)
                for { let j := byte(0, calldataload(add(session.offset, add(p, 42)))) } j { j := sub(j, 1) } {
                    let head := calldataload(add(session.offset, r))
                    let pos := add(4, shl(5, byte(0, head)))
                    if gt(add(pos, 32), data.length) {
                        mstore(add(use, 0x120), 5) // CALL_ARGUMENT_MISSING
                        mstore(add(use, 0x140), r)
                        break
                    }
                    let x := calldataload(add(data.offset, pos))
                    let ok := 0
                    // Cases in order of how often sessions use them (the order changes no result).
                    switch byte(1, head)
                    case 0 { ok := eq(x, calldataload(add(session.offset, add(r, 3)))) } // EQ
                    case 5 { ok := iszero(gt(x, calldataload(add(session.offset, add(r, 3))))) } // LTE
                    case 8 { ok := eq(x, mload(use)) } // SELF: the account
                    case 3 { ok := iszero(lt(x, calldataload(add(session.offset, add(r, 3))))) } // GTE
                    case 4 { ok := lt(x, calldataload(add(session.offset, add(r, 3)))) } // LT
                    case 2 { ok := gt(x, calldataload(add(session.offset, add(r, 3)))) } // GT
                    case 1 { ok := iszero(eq(x, calldataload(add(session.offset, add(r, 3))))) } // NE
                    case 6 {
                        // IN_RANGE
                        ok := and(
                            iszero(lt(x, calldataload(add(session.offset, add(r, 3))))),
                            iszero(gt(x, calldataload(add(session.offset, add(r, 35)))))
                        )
                    }
                    default {
                        // ONE_OF (the encoding check admits no op above 8)
                        for { let q := byte(2, head) } q {} {
                            q := sub(q, 1)
                            if eq(x, calldataload(add(session.offset, add(r, add(3, shl(5, q)))))) {
                                ok := 1
                                break
                            }
                        }
                    }
                    if iszero(ok) {
                        mstore(add(use, 0x120), 6) // CALL_RULE_VIOLATED
                        mstore(add(use, 0x140), r)
                        mstore(add(use, 0x160), x)
                        break
                    }
                    r := add(r, add(3, shl(5, byte(2, head))))
                }
                if mload(add(use, 0x120)) { break }
                // The use count of permission k (0..8) lives in the state word, 16 bits each.
                let maxUses := shr(240, calldataload(add(session.offset, add(p, 40))))
                if maxUses {
                    let shift := add(32, shl(4, k))
                    let word := mload(add(use, 0x40))
                    if iszero(lt(and(shr(shift, word), 0xffff), maxUses)) {
                        mstore(add(use, 0x120), 7) // CALL_USES_EXHAUSTED
                        mstore(add(use, 0x140), maxUses)
                        break
                    }
                    mstore(add(use, 0x40), add(word, shl(shift, 1)))
                }
                break
            }
            mstore(add(use, 0x180), p) // where permission k starts, for {_revertCall}
        }
    }

    /// @dev Reverts with the error for a {_matchCall} failure.
    function _revertCall(Use memory use, bytes calldata session, uint256 i, address target, uint256 value)
        internal
        pure
    {
        uint256 code = use.failure;
        uint256 k = uint8(use.indices[i]);
        if (code == CALL_FORBIDDEN_TARGET) revert ForbiddenTarget(i, target);
        if (code == CALL_NO_SUCH_PERMISSION) revert PermissionIndexOutOfRange(i, k, use.failure1);
        if (code == CALL_NOT_PERMITTED) revert CallNotPermitted(i, k, target, bytes4(bytes32(use.failure1)));
        if (code == CALL_VALUE_ABOVE_LIMIT) revert ValueLimitExceeded(i, k, value, use.failure1);
        if (code == CALL_USES_EXHAUSTED) revert PermissionUsesExhausted(use.id, k, use.failure1);
        // A rule failed: failure1 is the rule's offset; count the rules before it.
        uint256 r = use.permission + SessionLib.PERMISSION_HEADER_LENGTH;
        uint256 j;
        while (r < use.failure1) {
            r = session.ruleEnd(r);
            ++j;
        }
        uint256 arg = SessionLib.word(session, r) >> 248;
        if (code == CALL_ARGUMENT_MISSING) revert ArgumentMissing(i, k, j, arg);
        revert RuleViolated(i, k, j, arg, use.failure2);
    }

    /// @dev Adds what call `i` spends to every limit it counts against (fee limits are charged
    ///      per operation, in {_checkCalls}).
    function _addSpend(
        Use memory use,
        bytes calldata session,
        uint256 i,
        address target,
        uint256 value,
        bytes calldata data
    ) internal pure {
        bytes4 selector = data.length >= 4 ? bytes4(bytes32(SessionLib.word(data, 0))) : bytes4(0);
        for (uint256 l = 0; l < use.spend.length; ++l) {
            (uint8 kind, address token,,) = session.limitAt(use.limits, l);
            uint256 amount;
            if (kind == SessionLib.KIND_NATIVE) amount = value;
            else if (kind == SessionLib.KIND_ERC20 && target == token) amount = _tokenAmount(i, selector, data);
            use.spend[l] = _saturatingAdd(use.spend[l], amount);
        }
    }

    /// @dev The spending power an ERC-20 call grants: the amount of `transfer`, `transferFrom`,
    ///      `approve` and `increaseAllowance` (an approval is spending power: it counts in full).
    ///      No other function of a limited token can be permitted (SessionLib.checkEncoding).
    function _tokenAmount(uint256 i, bytes4 selector, bytes calldata data) internal pure returns (uint256) {
        uint256 pos;
        if (
            selector == SessionLib.ERC20_TRANSFER || selector == SessionLib.ERC20_APPROVE
                || selector == SessionLib.ERC20_INCREASE_ALLOWANCE
        ) pos = 36;
        else if (selector == SessionLib.ERC20_TRANSFER_FROM) pos = 68;
        else return 0;
        if (data.length < pos + 32) revert TokenAmountMissing(i);
        return SessionLib.word(data, pos);
    }

    function _spend(Use memory use, bytes calldata session, uint256 l) internal {
        (,, uint128 limit, uint48 period) = session.limitAt(use.limits, l);
        uint256 amount = use.spend[l];
        bytes32 key = _limitKey(use.id, l);
        uint256 w = _limitWords[key][use.account];
        uint256 spent = w & type(uint128).max;
        uint256 periodIndex;
        if (period != 0) {
            uint48 start = session.validAfter();
            if (use.claimedTime < start) revert ClaimedTimeBeforeSession(use.claimedTime, start);
            periodIndex = (use.claimedTime - start) / period;
            uint256 stored = w >> 128;
            if (periodIndex < stored) revert PeriodElapsed(use.id, l, periodIndex, stored);
            if (periodIndex > stored) spent = 0;
            // start >= 1 (checkEncoding), so periodEnd >= 1: never the EntryPoint's "no expiry".
            uint256 periodStart = start + periodIndex * period;
            uint256 periodEnd = periodStart + period - 1;
            if (periodStart > use.validAfter) use.validAfter = uint48(periodStart);
            if (periodEnd < use.validUntil) use.validUntil = uint48(periodEnd);
        }
        if (amount > limit || spent > limit - amount) revert LimitExceeded(use.id, l, spent, amount, limit);
        _limitWords[key][use.account] = (periodIndex << 128) | (spent + amount);
    }

    function _revoke(address account, bytes32 id) internal {
        uint256 word = _sessionWords[id][account];
        if (word & STATE_MASK == STATE_REVOKED) return;
        _sessionWords[id][account] = (word & ~STATE_MASK) | STATE_REVOKED;
        emit SessionRevoked(account, id);
    }

    /// @dev Moves `account` to a new epoch: a hash of the previous one and of the previous block,
    ///      so no one can sign a grant for it before that block exists (a counter could be
    ///      predicted, and a grant made for "the next epoch" would come alive at the next
    ///      revoke-all). Every session and grant naming an older epoch is void from now on.
    function _newEpoch(address account) internal {
        uint256 w = _accountWords[account];
        uint64 previous = uint64(w >> EPOCH_SHIFT);
        bytes32 recent;
        if (block.number != 0) recent = blockhash(block.number - 1);
        uint64 next = uint64(uint256(keccak256(abi.encode(account, previous, recent, block.prevrandao, block.number))));
        _accountWords[account] = (w & ~(EPOCH_MASK << EPOCH_SHIFT)) | (uint256(next) << EPOCH_SHIFT);
        emit SessionsVoided(account, next);
    }

    function _limitKey(bytes32 id, uint256 l) internal pure returns (bytes32) {
        return keccak256(abi.encode(id, l));
    }

    function _saturatingAdd(uint256 a, uint256 b) internal pure returns (uint256) {
        unchecked {
            uint256 c = a + b;
            return c < a ? type(uint256).max : c;
        }
    }
}
