// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title SessionLib
/// @notice The packed encoding of a Valet session, read straight from calldata, and its EIP-712
///         struct hash. This file is the one place the encoding and the rule codes are defined;
///         `docs/encoding.md` and the Rust `valet-core` crate mirror it byte for byte.
///
/// Session (big-endian, no padding, no trailing bytes):
///
/// | offset     | size | field                                                           |
/// |------------|------|-----------------------------------------------------------------|
/// | 0          | 20   | sessionKey (address)                                            |
/// | 20         | 6    | validAfter (uint48, unix seconds, inclusive; at least 1)        |
/// | 26         | 6    | validUntil (uint48, unix seconds, inclusive; > validAfter)      |
/// | 32         | 8    | epoch (uint64: the account's epoch when granted)                |
/// | 40         | 4    | salt (uint32)                                                   |
/// | 44         | 3    | maxUses (uint24: operations in all; 0 = no count)               |
/// | 47         | 10   | feeBudget (uint80 wei: the most of the account's ETH the        |
/// |            |      | session's operations may commit to network fees; 0 = none)      |
/// | 57         | 1    | paymaster count M (0..8)                                        |
/// | 58         | 20*M | paymasters (the only ones an operation may name, if M > 0)      |
/// | 58 + 20*M  | 1    | limit count L (0..8)                                            |
/// | then       | 43*L | limits                                                          |
/// | then       | 1    | permission count P (1..16)                                      |
/// | then       | ...  | permissions                                                     |
///
/// Limit (43 bytes): kind (uint8: 0 native value, 1 ERC-20, 2 fees) ‖ token (address; zero
/// unless ERC-20) ‖ amount (uint128) ‖ period (uint48 seconds; 0 = over the whole session,
/// otherwise an allowance that refills every `period` seconds counted from validAfter).
///
/// Permission: target (address) ‖ selector (bytes4; 0x00000000 allows exactly a plain value
/// transfer, empty calldata) ‖ valueLimit (uint128: the most native value one call may send;
/// 0 = no value at all) ‖ maxUses (uint16 calls; 0 = not counted, unlimited; only permissions
/// 0..8 may count) ‖ rule count R (0..16) ‖ rules. A permission whose target is the token of an
/// ERC-20 limit may only call `transfer`, `transferFrom`, `approve` or `increaseAllowance` —
/// the functions that limit counts — so that no permitted call moves the token uncounted.
///
/// Rule: arg (uint8: index of the 32-byte ABI word after the selector) ‖ op (uint8) ‖
/// value count N (uint8) ‖ N values (bytes32 each). Words compare as uint256.
///
/// | op | name      | N     | passes when                     |
/// |----|-----------|-------|---------------------------------|
/// | 0  | EQ        | 1     | x == v0                         |
/// | 1  | NE        | 1     | x != v0                         |
/// | 2  | GT        | 1     | x > v0                          |
/// | 3  | GTE       | 1     | x >= v0                         |
/// | 4  | LT        | 1     | x < v0                          |
/// | 5  | LTE       | 1     | x <= v0                         |
/// | 6  | IN_RANGE  | 2     | v0 <= x <= v1 (v0 <= v1)        |
/// | 7  | ONE_OF    | 1..16 | x is one of the values          |
/// | 8  | SELF      | 0     | x == the account's address      |
///
/// SELF ("`$account`" in session specs) binds an argument to the account using the session,
/// such as the recipient of a mint, in 3 bytes instead of 35.
///
/// The session id is `keccak256(packed session)`. The encoding is canonical (every byte is a
/// field, counts are explicit, nothing may trail), so one granted session has exactly one id.
library SessionLib {
    /// @dev The fixed header, up to and including the paymaster count.
    uint256 internal constant HEADER_LENGTH = 58;
    uint256 internal constant PAYMASTER_LENGTH = 20;
    uint256 internal constant LIMIT_LENGTH = 43;
    uint256 internal constant PERMISSION_HEADER_LENGTH = 43;
    uint256 internal constant RULE_HEADER_LENGTH = 3;

    uint256 internal constant MAX_PAYMASTERS = 8;
    uint256 internal constant MAX_LIMITS = 8;
    uint256 internal constant MAX_PERMISSIONS = 16;
    uint256 internal constant MAX_RULES = 16;
    uint256 internal constant MAX_ONE_OF_VALUES = 16;
    /// @dev Permissions 0..8 keep their use counts in the session's state word.
    uint256 internal constant MAX_COUNTED_PERMISSIONS = 9;

    uint8 internal constant KIND_NATIVE = 0;
    uint8 internal constant KIND_ERC20 = 1;
    uint8 internal constant KIND_FEES = 2;

    uint8 internal constant OP_EQ = 0;
    uint8 internal constant OP_NE = 1;
    uint8 internal constant OP_GT = 2;
    uint8 internal constant OP_GTE = 3;
    uint8 internal constant OP_LT = 4;
    uint8 internal constant OP_LTE = 5;
    uint8 internal constant OP_IN_RANGE = 6;
    uint8 internal constant OP_ONE_OF = 7;
    uint8 internal constant OP_SELF = 8;

    /// @dev The ERC-20 functions a token limit counts (see SessionKeyValidator._tokenAmount).
    bytes4 internal constant ERC20_TRANSFER = 0xa9059cbb;
    bytes4 internal constant ERC20_APPROVE = 0x095ea7b3;
    bytes4 internal constant ERC20_INCREASE_ALLOWANCE = 0x39509351;
    bytes4 internal constant ERC20_TRANSFER_FROM = 0x23b872dd;

    bytes32 internal constant RULE_TYPEHASH = keccak256("Rule(uint8 arg,uint8 op,bytes32[] values)");
    bytes32 internal constant LIMIT_TYPEHASH = keccak256("Limit(uint8 kind,address token,uint128 amount,uint48 period)");
    bytes32 internal constant PERMISSION_TYPEHASH = keccak256(
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
    );
    bytes32 internal constant SESSION_TYPEHASH = keccak256(
        "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,"
        "uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
        "Limit(uint8 kind,address token,uint128 amount,uint48 period)"
        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)"
        "Rule(uint8 arg,uint8 op,bytes32[] values)"
    );

    /// @notice The session encoding is malformed at byte `offset`: `reason` says how.
    error MalformedSession(uint256 offset, string reason);

    // ---------------------------------------------------------------- readers
    //
    // The readers below load 32-byte words straight from calldata without bounds checks. They
    // are only ever applied to a session whose encoding passed {checkEncoding} — when it is
    // enabled, or, on later uses, byte-identical to it (same keccak256 id) — so every offset
    // they compute lies inside the session.

    /// @dev The 32 bytes of `s` starting at `o` (bytes past the end of calldata read as zero).
    function word(bytes calldata s, uint256 o) internal pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := calldataload(add(s.offset, o))
        }
    }

    function sessionKey(bytes calldata s) internal pure returns (address) {
        return address(uint160(word(s, 0) >> 96));
    }

    function validAfter(bytes calldata s) internal pure returns (uint48) {
        return uint48(word(s, 20) >> 208);
    }

    function validUntil(bytes calldata s) internal pure returns (uint48) {
        return uint48(word(s, 26) >> 208);
    }

    function epoch(bytes calldata s) internal pure returns (uint64) {
        return uint64(word(s, 32) >> 192);
    }

    function salt(bytes calldata s) internal pure returns (uint32) {
        return uint32(word(s, 40) >> 224);
    }

    function maxUses(bytes calldata s) internal pure returns (uint256) {
        return word(s, 44) >> 232;
    }

    function feeBudget(bytes calldata s) internal pure returns (uint256) {
        return word(s, 47) >> 176;
    }

    function paymasterCount(bytes calldata s) internal pure returns (uint256) {
        return word(s, 57) >> 248;
    }

    function paymasterAt(bytes calldata s, uint256 i) internal pure returns (address) {
        return address(uint160(word(s, HEADER_LENGTH + i * PAYMASTER_LENGTH) >> 96));
    }

    /// @dev Whether `paymaster` is one of the session's paymasters.
    function listsPaymaster(bytes calldata s, address paymaster) internal pure returns (bool) {
        uint256 count = paymasterCount(s);
        for (uint256 i = 0; i < count; ++i) {
            if (paymasterAt(s, i) == paymaster) return true;
        }
        return false;
    }

    /// @dev Offset of the limit count byte.
    function limitsOffset(bytes calldata s) internal pure returns (uint256) {
        return HEADER_LENGTH + paymasterCount(s) * PAYMASTER_LENGTH;
    }

    function limitCount(bytes calldata s) internal pure returns (uint256) {
        return word(s, limitsOffset(s)) >> 248;
    }

    /// @dev Offset of the permission count byte.
    function permissionsOffset(bytes calldata s) internal pure returns (uint256) {
        uint256 o = limitsOffset(s);
        return o + 1 + (word(s, o) >> 248) * LIMIT_LENGTH;
    }

    // ---------------------------------------------------------------- limits

    /// @dev Limit `l` (< limitCount) as (kind, token, amount, period); `base` is {limitsOffset}.
    function limitAt(bytes calldata s, uint256 base, uint256 l)
        internal
        pure
        returns (uint8 kind, address token, uint128 amount, uint48 period)
    {
        uint256 o = base + 1 + l * LIMIT_LENGTH;
        uint256 w = word(s, o);
        kind = uint8(w >> 248);
        token = address(uint160(w >> 88));
        amount = uint128(word(s, o + 21) >> 128);
        period = uint48(word(s, o + 37) >> 208);
    }

    // ---------------------------------------------------------------- permissions

    function permissionTarget(bytes calldata s, uint256 o) internal pure returns (address) {
        return address(uint160(word(s, o) >> 96));
    }

    function permissionSelector(bytes calldata s, uint256 o) internal pure returns (bytes4) {
        return bytes4(bytes32(word(s, o + 20)));
    }

    function permissionValueLimit(bytes calldata s, uint256 o) internal pure returns (uint256) {
        return word(s, o + 24) >> 128;
    }

    function permissionMaxUses(bytes calldata s, uint256 o) internal pure returns (uint256) {
        return word(s, o + 40) >> 240;
    }

    function permissionRuleCount(bytes calldata s, uint256 o) internal pure returns (uint256) {
        return word(s, o + 42) >> 248;
    }

    /// @dev Offset just past the rule at `r`.
    function ruleEnd(bytes calldata s, uint256 r) internal pure returns (uint256) {
        return r + RULE_HEADER_LENGTH + (word(s, r + 2) >> 248) * 32;
    }

    // ---------------------------------------------------------------- encoding check

    /// @notice Reverts with {MalformedSession} unless `s` is a well-formed, canonical session.
    function checkEncoding(bytes calldata s) internal pure {
        uint256 len = s.length;
        if (len < HEADER_LENGTH) revert MalformedSession(len, "shorter than the header");
        if (len > type(uint16).max) revert MalformedSession(len, "longer than 65535 bytes");
        if (sessionKey(s) == address(0)) revert MalformedSession(0, "session key is zero");
        // validUntil 0 means "no expiry" to the EntryPoint, so no window may end at 0: every
        // window the validator returns ends at validUntil or at a period's end, both >= validAfter.
        if (validAfter(s) == 0) revert MalformedSession(20, "validAfter is zero");
        if (validUntil(s) <= validAfter(s)) revert MalformedSession(26, "validUntil is not after validAfter");
        uint256 paymasters = paymasterCount(s);
        if (paymasters > MAX_PAYMASTERS) revert MalformedSession(57, "more than 8 paymasters");
        uint256 o = HEADER_LENGTH;
        // The paymasters, the limit count and the byte after it (a limit or the permission count).
        if (len < o + paymasters * PAYMASTER_LENGTH + 2) revert MalformedSession(o, "paymasters cut short");
        for (uint256 i = 0; i < paymasters; ++i) {
            if (paymasterAt(s, i) == address(0)) revert MalformedSession(o, "paymaster is zero");
            o += PAYMASTER_LENGTH;
        }
        uint256 limitBase = o;
        uint256 limits = uint8(s[o]);
        if (limits > MAX_LIMITS) revert MalformedSession(o, "more than 8 limits");
        o += 1;
        for (uint256 l = 0; l < limits; ++l) {
            if (len < o + LIMIT_LENGTH + 1) revert MalformedSession(o, "limit cut short");
            uint8 kind = uint8(s[o]);
            address token = address(bytes20(s[o + 1:o + 21]));
            if (kind == KIND_ERC20) {
                if (token == address(0)) revert MalformedSession(o + 1, "ERC-20 limit without a token");
            } else if (kind == KIND_NATIVE || kind == KIND_FEES) {
                if (token != address(0)) revert MalformedSession(o + 1, "native or fee limit names a token");
            } else {
                revert MalformedSession(o, "unknown limit kind");
            }
            o += LIMIT_LENGTH;
        }
        uint256 permissions = uint8(s[o]);
        if (permissions == 0 || permissions > MAX_PERMISSIONS) revert MalformedSession(o, "not 1..16 permissions");
        o += 1;
        for (uint256 k = 0; k < permissions; ++k) {
            if (len < o + PERMISSION_HEADER_LENGTH) revert MalformedSession(o, "permission cut short");
            address target = permissionTarget(s, o);
            if (target == address(0)) revert MalformedSession(o, "permission target is zero");
            if (!_countedOnLimitedToken(s, limitBase, limits, target, permissionSelector(s, o))) {
                revert MalformedSession(o + 20, "function on a limited token that its limit does not count");
            }
            if (k >= MAX_COUNTED_PERMISSIONS && permissionMaxUses(s, o) != 0) {
                revert MalformedSession(o + 40, "only permissions 0..8 may have maxUses");
            }
            uint256 rules = permissionRuleCount(s, o);
            if (rules > MAX_RULES) revert MalformedSession(o + 42, "more than 16 rules");
            o += PERMISSION_HEADER_LENGTH;
            for (uint256 i = 0; i < rules; ++i) {
                if (len < o + RULE_HEADER_LENGTH) revert MalformedSession(o, "rule cut short");
                uint8 op = uint8(s[o + 1]);
                uint256 n = uint8(s[o + 2]);
                if (op > OP_SELF) revert MalformedSession(o + 1, "unknown rule op");
                if (op == OP_SELF) {
                    if (n != 0) revert MalformedSession(o + 2, "SELF takes no values");
                } else if (op == OP_IN_RANGE) {
                    if (n != 2) revert MalformedSession(o + 2, "IN_RANGE needs 2 values");
                } else if (op == OP_ONE_OF) {
                    if (n == 0 || n > MAX_ONE_OF_VALUES) revert MalformedSession(o + 2, "ONE_OF needs 1..16 values");
                } else if (n != 1) {
                    revert MalformedSession(o + 2, "rule needs exactly 1 value");
                }
                if (len < o + RULE_HEADER_LENGTH + 32 * n) revert MalformedSession(o, "rule values cut short");
                if (op == OP_IN_RANGE && uint256(bytes32(s[o + 3:o + 35])) > uint256(bytes32(s[o + 35:o + 67]))) {
                    revert MalformedSession(o + 3, "IN_RANGE minimum above maximum");
                }
                o += RULE_HEADER_LENGTH + 32 * n;
            }
        }
        if (o != len) revert MalformedSession(o, "trailing bytes");
    }

    /// @dev False when `target` is the token of an ERC-20 limit and `selector` is not a function
    ///      that limit counts: any other function of the token (`burn`, `transferAndCall`, `send`,
    ///      a plain transfer into its fallback, …) could move it uncounted.
    function _countedOnLimitedToken(bytes calldata s, uint256 base, uint256 limits, address target, bytes4 selector)
        private
        pure
        returns (bool)
    {
        if (
            selector == ERC20_TRANSFER || selector == ERC20_APPROVE || selector == ERC20_INCREASE_ALLOWANCE
                || selector == ERC20_TRANSFER_FROM
        ) return true;
        for (uint256 l = 0; l < limits; ++l) {
            (uint8 kind, address token,,) = limitAt(s, base, l);
            if (kind == KIND_ERC20 && token == target) return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- EIP-712

    /// @notice The EIP-712 `hashStruct(Session)` of a session whose encoding was checked.
    function hashStruct(bytes calldata s) internal pure returns (bytes32) {
        uint256 paymasters = paymasterCount(s);
        bytes32[] memory paymasterWords = new bytes32[](paymasters);
        for (uint256 i = 0; i < paymasters; ++i) {
            paymasterWords[i] = bytes32(uint256(uint160(paymasterAt(s, i))));
        }
        uint256 base = limitsOffset(s);
        uint256 limits = word(s, base) >> 248;
        bytes32[] memory limitHashes = new bytes32[](limits);
        for (uint256 l = 0; l < limits; ++l) {
            (uint8 kind, address token, uint128 amount, uint48 period) = limitAt(s, base, l);
            limitHashes[l] = keccak256(abi.encode(LIMIT_TYPEHASH, kind, token, amount, period));
        }
        uint256 o = base + 1 + limits * LIMIT_LENGTH;
        uint256 permissions = uint8(s[o]);
        o += 1;
        bytes32[] memory permissionHashes = new bytes32[](permissions);
        for (uint256 k = 0; k < permissions; ++k) {
            (permissionHashes[k], o) = _hashPermission(s, o);
        }
        return keccak256(
            abi.encode(
                SESSION_TYPEHASH,
                sessionKey(s),
                validAfter(s),
                validUntil(s),
                epoch(s),
                salt(s),
                maxUses(s),
                feeBudget(s),
                keccak256(abi.encodePacked(paymasterWords)),
                keccak256(abi.encodePacked(limitHashes)),
                keccak256(abi.encodePacked(permissionHashes))
            )
        );
    }

    function _hashPermission(bytes calldata s, uint256 o) private pure returns (bytes32 hash, uint256 next) {
        uint256 rules = permissionRuleCount(s, o);
        bytes32[] memory ruleHashes = new bytes32[](rules);
        uint256 r = o + PERMISSION_HEADER_LENGTH;
        for (uint256 i = 0; i < rules; ++i) {
            uint256 end = ruleEnd(s, r);
            uint256 head = word(s, r);
            ruleHashes[i] = keccak256(abi.encode(RULE_TYPEHASH, head >> 248, (head >> 240) & 0xff, keccak256(s[r + 3:end])));
            r = end;
        }
        hash = keccak256(
            abi.encode(
                PERMISSION_TYPEHASH,
                permissionTarget(s, o),
                permissionSelector(s, o),
                permissionValueLimit(s, o),
                permissionMaxUses(s, o),
                keccak256(abi.encodePacked(ruleHashes))
            )
        );
        next = r;
    }
}
