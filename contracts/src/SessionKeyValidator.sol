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
///         values, how long, how much and how often. Any ERC-7579 account can install it.
///
/// @dev **Grant.** The owner signs the EIP-712 digest of `Grant(address account, Session session)`
///      (domain: name "Valet", version "1", this chain, this contract); the signature is checked
///      through the account's ERC-1271 `isValidSignature`. A session is enabled either inside its
///      first use (the session and the grant ride in the operation's signature) or by the account
///      calling {enableSession}.
///
///      **Use.** The operation's nonce key selects this validator; its signature is
///      `mode (1) ‖ session length (2) ‖ session ‖ claimedTime (6) ‖ call count n (1) ‖
///      permission index per call (n) ‖ [grant length (2) ‖ grant signature, mode 1 only] ‖
///      session key signature (65)`, mode 0 = use, 1 = enable and use. The session key signs
///      `keccak256(userOpHash ‖ sessionId ‖ claimedTime ‖ n ‖ indices)` (raw ECDSA, low s), so
///      no relayer can re-point a call at another permission or the operation at another session.
///      Each call must satisfy the permission its index names: target, selector, value cap, every
///      rule. `claimedTime` places the operation in a period of each periodic allowance it
///      spends from; the period's window is returned in validationData, so the EntryPoint refuses
///      the operation outside it. Time is never read here (ERC-7562 bans TIMESTAMP in validation):
///      the session's window, narrowed by periods, goes out in validationData.
///
///      **Storage** is account-associated (the account is the innermost mapping key), as ERC-7562
///      requires of a module's storage during validation.
///
///      **Counters** (session uses, permission uses, limit spending) are updated during
///      validation. If the execution then reverts they stay spent, exactly like the nonce: the
///      operation was authorised and paid for. Off-chain pre-flight (valet-core's evaluator) keeps
///      this rare.
///
///      **Failures.** A session key signature that does not match returns SIG_VALIDATION_FAILED
///      (as ERC-4337 requires, so bundlers can estimate gas with a dummy signature). Everything
///      else reverts with a custom error naming the offending values — unknown, revoked or
///      exhausted sessions, calls outside the session, malformed encodings, a bad grant signature —
///      because those are not signature mismatches, a revert carries its reason to the bundler's
///      answer (AA23), and the operation is refused either way.
///
///      **Never allowed**, whatever a session says: calls to the account itself (module
///      management, upgrades, `execute` re-entry), calls to this validator, delegatecall and
///      every execution mode other than single and batch with the default exec type, and ERC-1271
///      signatures by session keys ({isValidSignatureWithSender} always says no: a session key
///      signing arbitrary messages, such as permits, would escape every limit).
contract SessionKeyValidator is IERC7579Validator, EIP712 {
    using SessionLib for bytes;

    /// @notice Where a session stands for an account.
    enum SessionState {
        None,
        Enabled,
        Revoked
    }

    /// @dev What one operation's validation carries from check to check. {_matchCall} reads and
    ///      writes these fields by their memory offsets (32 bytes each, in this order), so the
    ///      order is part of the code: account 0x00, id 0x20, word 0x40, calls 0x60, indices 0x80,
    ///      claimedTime 0xa0, validAfter 0xc0, validUntil 0xe0, spend 0x100, failure 0x120, its
    ///      values 0x140 and 0x160, the offset of the call's permission 0x180, and the state
    ///      word's storage slot 0x1a0 (0 until loaded).
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
    }

    uint8 internal constant MODE_USE = 0;
    uint8 internal constant MODE_ENABLE = 1;
    uint256 internal constant KEY_SIGNATURE_LENGTH = 65;

    uint256 internal constant STATE_MASK = 0xff;
    uint256 internal constant COUNT_MASK = 0xffffff;
    uint256 internal constant SESSION_USES_SHIFT = 8;
    uint256 internal constant PERMISSION_USES_SHIFT = 32;
    uint256 internal constant AMOUNT_MASK = type(uint128).max;
    uint256 internal constant EPOCH_MASK = 0xffffffff;
    uint256 internal constant ENABLED_ONE = 1 << 32;
    uint256 internal constant INSTALLED = 1 << 255;

    bytes4 internal constant ERC20_TRANSFER = 0xa9059cbb;
    bytes4 internal constant ERC20_APPROVE = 0x095ea7b3;
    bytes4 internal constant ERC20_INCREASE_ALLOWANCE = 0x39509351;
    bytes4 internal constant ERC20_TRANSFER_FROM = 0x23b872dd;

    bytes32 internal constant GRANT_TYPEHASH = keccak256(
        "Grant(address account,Session session)"
        "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint24 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
        "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint32 epoch,uint32 salt,uint24 maxUses,"
        "Limit[] limits,Permission[] permissions)"
    );
    bytes32 internal constant REVOKE_SESSION_TYPEHASH = keccak256("RevokeSession(address account,bytes32 sessionId)");
    bytes32 internal constant REVOKE_ALL_TYPEHASH =
        keccak256("RevokeAllSessions(address account,uint32 epoch,bytes32[] sessionIds)");

    /// @dev state (8 bits) | session uses (24) | uses of permission k (24 each, k = 0..8).
    mapping(bytes32 sessionId => mapping(address account => uint256)) internal _sessionWords;
    /// @dev Per limit (key = keccak(sessionId, index)): spent (low 128 bits) | period index (high 128).
    mapping(bytes32 limitKey => mapping(address account => uint256)) internal _limitWords;
    /// @dev epoch (bits 0..31: grants made under an older epoch can no longer be enabled) |
    ///      enabled sessions (bits 32..63: enabled, not revoked) | bit 255 while installed (set by
    ///      onInstall, cleared by onUninstall; it also keeps the word nonzero, so enabling never
    ///      pays for a zero-to-nonzero write here).
    mapping(address account => uint256) internal _accountWords;

    // ------------------------------------------------------------------ events

    /// @notice A session was enabled for `account`.
    event SessionEnabled(
        address indexed account, bytes32 indexed sessionId, address indexed sessionKey, uint48 validAfter, uint48 validUntil
    );
    /// @notice A session was revoked for `account` (it may never have been enabled).
    event SessionRevoked(address indexed account, bytes32 indexed sessionId);
    /// @notice Grants of `account` made under an epoch before `epoch` can no longer enable a
    ///         session (emitted by a revoke-all, after a {SessionRevoked} per session, and by
    ///         uninstalling).
    event GrantsVoided(address indexed account, uint32 epoch);

    // ------------------------------------------------------------------ errors

    /// @notice The operation's signature is malformed at byte `offset`.
    error MalformedSignature(uint256 offset, string reason);
    /// @notice The signature's first byte is not 0 (use) or 1 (enable and use).
    error UnknownSignatureMode(uint8 mode);
    /// @notice The session was granted under epoch `sessionEpoch`, but the account is at
    ///         `accountEpoch` (it revoked all sessions since): grant it again.
    error SessionEpochMismatch(bytes32 sessionId, uint32 sessionEpoch, uint32 accountEpoch);
    /// @notice The account's ERC-1271 check refused the owner's signature over `digest` (a revoke).
    error InvalidOwnerSignature(address account, bytes32 digest);
    /// @notice Sessions can only be enabled for an account that has this validator installed.
    error NotInstalled(address account);
    /// @notice The account revoked all sessions 2^32 - 1 times; no epoch is left.
    error EpochExhausted(address account);
    /// @notice `count` sessions of the account are still enabled: a revoke-all must list every
    ///         enabled session (see {SessionEnabled} events), and a reinstall needs none left.
    error SessionsStillEnabled(uint256 count);
    /// @notice The session is not enabled for this account: enable it (mode 1) first.
    error SessionNotEnabled(bytes32 sessionId);
    /// @notice The session is enabled already: use mode 0.
    error SessionAlreadyEnabled(bytes32 sessionId);
    /// @notice The session was revoked.
    error SessionIsRevoked(bytes32 sessionId);
    /// @notice The account's ERC-1271 check refused the owner's grant signature for the session.
    error InvalidGrantSignature(address account, bytes32 sessionId);
    /// @notice The signature names `indices` permissions for `calls` calls.
    error CallCountMismatch(uint256 calls, uint256 indices);
    /// @notice Call `callIndex` targets the account itself or this validator.
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

    constructor() EIP712("Valet", "1") {}

    // ------------------------------------------------------------------ ERC-7579 module

    /// @notice Marks the account as installed. Refused while sessions from an earlier
    ///         installation are still enabled, so that a reinstall never brings them back.
    function onInstall(bytes calldata) external {
        uint256 w = _accountWords[msg.sender];
        uint256 enabled = (w >> 32) & EPOCH_MASK;
        if (enabled != 0) revert SessionsStillEnabled(enabled);
        _accountWords[msg.sender] = w | INSTALLED;
    }

    /// @notice Uninstalling stops every session at once (the account no longer routes operations
    ///         here) and voids grants not yet enabled. `data` may be `abi.encode(bytes32[] ids)`
    ///         of enabled sessions to revoke for good; any left enabled block a reinstall until
    ///         revoked.
    function onUninstall(bytes calldata data) external {
        if (data.length != 0) {
            bytes32[] memory ids = abi.decode(data, (bytes32[]));
            for (uint256 i = 0; i < ids.length; ++i) {
                _revoke(msg.sender, ids[i]);
            }
        }
        // Uninstalling must always work: at the last epoch, grants stay void without a bump.
        if (_accountWords[msg.sender] & EPOCH_MASK != EPOCH_MASK) _bumpEpoch(msg.sender);
        _accountWords[msg.sender] &= ~INSTALLED;
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
        o = _authorize(use, session, sig, mode, o);
        if (sig.length != o + KEY_SIGNATURE_LENGTH) revert MalformedSignature(o, "session key signature not 65 bytes");

        uint256 before = use.word;
        _checkCalls(use, userOp.callData, session);
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
            switch or(lt(size, add(o, 7)), lt(len, 44))
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
        if (_accountWords[account] & INSTALLED == 0) revert NotInstalled(account);
        id = keccak256(session);
        session.checkEncoding();
        _checkEnableable(account, session, id);
        _markEnabled(account, session, id);
    }

    /// @notice Revokes one session of the calling account, enabled or not yet: its grant can
    ///         never enable it again.
    function revokeSession(bytes32 id) external {
        _revoke(msg.sender, id);
    }

    /// @notice Revokes every session of the calling account, including grants not yet enabled.
    /// @param enabledIds Every session of the account that is enabled and not revoked (from its
    ///        {SessionEnabled} events); the call reverts with {SessionsStillEnabled} if one is
    ///        missing, so a revoke-all can never leave a session running. Keeping the list off
    ///        chain is what lets a session operation skip reading a per-account epoch (2,100 gas
    ///        on every use).
    function revokeAllSessions(bytes32[] calldata enabledIds) external {
        _revokeAll(msg.sender, enabledIds);
    }

    /// @notice Revokes a session with the owner's signature over {revokeSessionDigest}, checked
    ///         through `account`'s ERC-1271: anyone (a relayer, the app) may submit it.
    function revokeSessionWithSignature(address account, bytes32 id, bytes calldata signature) external {
        bytes32 digest = revokeSessionDigest(account, id);
        if (!_isOwnerSignature(account, digest, signature)) revert InvalidOwnerSignature(account, digest);
        _revoke(account, id);
    }

    /// @notice {revokeAllSessions} with the owner's signature over {revokeAllSessionsDigest}
    ///         (for the current epoch and exactly these ids), checked through `account`'s ERC-1271.
    function revokeAllSessionsWithSignature(address account, bytes32[] calldata enabledIds, bytes calldata signature)
        external
    {
        bytes32 digest = revokeAllSessionsDigest(account, enabledIds);
        if (!_isOwnerSignature(account, digest, signature)) revert InvalidOwnerSignature(account, digest);
        _revokeAll(account, enabledIds);
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

    /// @notice The EIP-712 digest the owner signs to revoke one session.
    function revokeSessionDigest(address account, bytes32 id) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVOKE_SESSION_TYPEHASH, account, id)));
    }

    /// @notice The EIP-712 digest the owner signs to revoke every session: the current epoch and
    ///         the ids of the enabled sessions, so a relayer can neither replay it later nor add ids.
    function revokeAllSessionsDigest(address account, bytes32[] calldata sessionIds) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(REVOKE_ALL_TYPEHASH, account, accountEpoch(account), keccak256(abi.encodePacked(sessionIds))))
        );
    }

    /// @notice The account's revoke-all epoch; new grants must carry it.
    function accountEpoch(address account) public view returns (uint32) {
        return uint32(_accountWords[account] & EPOCH_MASK);
    }

    /// @notice How many sessions of the account are enabled and not revoked (expired ones count
    ///         until revoked).
    function enabledSessionCount(address account) external view returns (uint256) {
        return (_accountWords[account] >> 32) & EPOCH_MASK;
    }

    /// @notice A session's state and how many operations it has made.
    function sessionState(address account, bytes32 id) external view returns (SessionState state, uint256 uses) {
        uint256 word = _sessionWords[id][account];
        return (SessionState(word & STATE_MASK), (word >> SESSION_USES_SHIFT) & COUNT_MASK);
    }

    /// @notice How many calls permission `permissionIndex` (0..8) of the session has made.
    function permissionUses(address account, bytes32 id, uint256 permissionIndex) external view returns (uint256) {
        if (permissionIndex >= SessionLib.MAX_COUNTED_PERMISSIONS) return 0;
        return (_sessionWords[id][account] >> (PERMISSION_USES_SHIFT + 24 * permissionIndex)) & COUNT_MASK;
    }

    /// @notice What limit `limitIndex` of the session has spent, and in which period (0 for a
    ///         whole-session limit). For a periodic limit, the spent amount is that period's.
    function limitUsage(address account, bytes32 id, uint256 limitIndex)
        external
        view
        returns (uint256 spent, uint256 period)
    {
        uint256 w = _limitWords[_limitKey(id, limitIndex)][account];
        return (w & AMOUNT_MASK, w >> 128);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Enables the session (mode 1) or checks it is usable (mode 0); loads its state word
    ///      into `use`. Returns the offset of the session key signature.
    function _authorize(Use memory use, bytes calldata session, bytes calldata sig, uint256 mode, uint256 o)
        internal
        returns (uint256)
    {
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
            _checkUsable(use.id, use.word);
            return o;
        }
        if (mode != MODE_ENABLE) revert UnknownSignatureMode(uint8(mode));
        if (sig.length < o + 2) revert MalformedSignature(sig.length, "grant length cut short");
        uint256 grantEnd = o + 2 + (SessionLib.word(sig, o) >> 240);
        if (sig.length < grantEnd) revert MalformedSignature(sig.length, "grant signature cut short");
        use.word = _enable(use.account, session, use.id, sig[o + 2:grantEnd]);
        return grantEnd;
    }

    function _enable(address account, bytes calldata session, bytes32 id, bytes calldata grant)
        internal
        returns (uint256 word)
    {
        session.checkEncoding();
        _checkEnableable(account, session, id);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(GRANT_TYPEHASH, account, session.hashStruct())));
        if (!_isOwnerSignature(account, digest, grant)) revert InvalidGrantSignature(account, id);
        return _markEnabled(account, session, id);
    }

    function _checkEnableable(address account, bytes calldata session, bytes32 id) internal view {
        uint256 word = _sessionWords[id][account];
        if (word & STATE_MASK == uint256(SessionState.Revoked)) revert SessionIsRevoked(id);
        if (word != 0) revert SessionAlreadyEnabled(id);
        uint32 current = uint32(_accountWords[account] & EPOCH_MASK);
        if (session.epoch() != current) revert SessionEpochMismatch(id, session.epoch(), current);
    }

    function _markEnabled(address account, bytes calldata session, bytes32 id) internal returns (uint256 word) {
        word = uint256(SessionState.Enabled);
        _sessionWords[id][account] = word;
        _accountWords[account] += ENABLED_ONE;
        emit SessionEnabled(account, id, session.sessionKey(), session.validAfter(), session.validUntil());
    }

    /// @dev A session that is enabled stays usable until revoked (by id, or by a revoke-all,
    ///      which revokes every enabled id), expired (validationData) or used up.
    function _checkUsable(bytes32 id, uint256 word) internal pure {
        uint256 state = word & STATE_MASK;
        if (state != uint256(SessionState.Enabled)) {
            if (state == uint256(SessionState.Revoked)) revert SessionIsRevoked(id);
            revert SessionNotEnabled(id);
        }
    }

    /// @dev Whether `account`'s ERC-1271 `isValidSignature` accepts `signature` over `digest`.
    ///      Any failure (no code, a revert, a short or wrong answer) is a no.
    function _isOwnerSignature(address account, bytes32 digest, bytes calldata signature)
        internal
        view
        returns (bool)
    {
        (bool ok, bytes memory ret) =
            account.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, signature)));
        return ok && ret.length >= 32 && abi.decode(ret, (bytes32)) == bytes32(IERC1271.isValidSignature.selector);
    }

    function _checkCalls(Use memory use, bytes calldata callData, bytes calldata session) internal {
        // One operation is one use of the session.
        uint256 sessionMax = session.maxUses();
        if (sessionMax != 0) {
            if ((use.word >> SESSION_USES_SHIFT) & COUNT_MASK >= sessionMax) revert SessionUsesExhausted(use.id, sessionMax);
            use.word += 1 << SESSION_USES_SHIFT;
        }

        uint256 limits = session.limitCount();
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
            // p: the offset of permission k, past the header and the limits (43 bytes each), then
            // k permissions of 44 bytes plus their rules (3 bytes plus 32 per value).
            let p := add(44, mul(byte(0, calldataload(add(session.offset, 43))), 43))
            for {} 1 {} {
                // Never the account itself (module management, upgrades) or this validator.
                if or(eq(target, mload(use)), eq(target, address())) {
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
                    let rules := byte(0, calldataload(add(session.offset, add(p, 43))))
                    p := add(p, 44)
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
                let r := add(p, 44)
                for { let j := byte(0, calldataload(add(session.offset, add(p, 43)))) } j { j := sub(j, 1) } {
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
                // The use count of permission k (0..8) lives in the state word, 24 bits each.
                let maxUses := shr(232, calldataload(add(session.offset, add(p, 40))))
                if maxUses {
                    let shift := add(32, mul(24, k))
                    let word := mload(add(use, 0x40))
                    if iszero(lt(and(shr(shift, word), 0xffffff), maxUses)) {
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

    /// @dev Adds what call `i` spends to every limit it counts against.
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
            (uint8 kind, address token,,) = session.limitAt(l);
            uint256 amount;
            if (kind == SessionLib.KIND_NATIVE) amount = value;
            else if (target == token) amount = _tokenAmount(i, selector, data);
            use.spend[l] = _saturatingAdd(use.spend[l], amount);
        }
    }

    /// @dev The spending power an ERC-20 call grants: the amount of `transfer`, `transferFrom`,
    ///      `approve` and `increaseAllowance` (an approval is spending power: it counts in full).
    function _tokenAmount(uint256 i, bytes4 selector, bytes calldata data) internal pure returns (uint256) {
        uint256 pos;
        if (selector == ERC20_TRANSFER || selector == ERC20_APPROVE || selector == ERC20_INCREASE_ALLOWANCE) pos = 36;
        else if (selector == ERC20_TRANSFER_FROM) pos = 68;
        else return 0;
        if (data.length < pos + 32) revert TokenAmountMissing(i);
        return SessionLib.word(data, pos);
    }

    function _spend(Use memory use, bytes calldata session, uint256 l) internal {
        (,, uint128 limit, uint48 period) = session.limitAt(l);
        uint256 amount = use.spend[l];
        bytes32 key = _limitKey(use.id, l);
        uint256 w = _limitWords[key][use.account];
        uint256 spent = w & AMOUNT_MASK;
        uint256 periodIndex;
        if (period != 0) {
            uint48 start = session.validAfter();
            if (use.claimedTime < start) revert ClaimedTimeBeforeSession(use.claimedTime, start);
            periodIndex = (use.claimedTime - start) / period;
            uint256 stored = w >> 128;
            if (periodIndex < stored) revert PeriodElapsed(use.id, l, periodIndex, stored);
            if (periodIndex > stored) spent = 0;
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
        uint256 state = word & STATE_MASK;
        if (state == uint256(SessionState.Revoked)) return;
        if (state == uint256(SessionState.Enabled)) _accountWords[account] -= ENABLED_ONE;
        _sessionWords[id][account] = (word & ~STATE_MASK) | uint256(SessionState.Revoked);
        emit SessionRevoked(account, id);
    }

    function _revokeAll(address account, bytes32[] calldata enabledIds) internal {
        for (uint256 i = 0; i < enabledIds.length; ++i) {
            _revoke(account, enabledIds[i]);
        }
        uint256 left = (_accountWords[account] >> 32) & EPOCH_MASK;
        if (left != 0) revert SessionsStillEnabled(left);
        _bumpEpoch(account);
    }

    function _bumpEpoch(address account) internal {
        uint256 w = _accountWords[account];
        uint256 next = (w & EPOCH_MASK) + 1;
        if (next > EPOCH_MASK) revert EpochExhausted(account);
        _accountWords[account] = (w & ~EPOCH_MASK) | next;
        emit GrantsVoided(account, uint32(next));
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
