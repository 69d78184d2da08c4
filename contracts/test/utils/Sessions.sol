// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A session as the tests build it, before packing. Mirrors the EIP-712 types.
struct Rule {
    uint8 arg;
    uint8 op;
    bytes32[] values;
}

struct Permission {
    address target;
    bytes4 selector;
    uint128 valueLimit;
    uint16 maxUses;
    Rule[] rules;
}

struct Limit {
    uint8 kind;
    address token;
    uint128 amount;
    uint48 period;
}

struct Session {
    address sessionKey;
    uint48 validAfter;
    uint48 validUntil;
    uint64 epoch;
    uint32 salt;
    uint24 maxUses;
    uint80 feeBudget;
    address[] paymasters;
    Limit[] limits;
    Permission[] permissions;
}

/// @notice Packs sessions and hashes them for EIP-712 — written from the spec a second time, in
///         memory and with `abi.encodePacked`, so the validator's calldata readers are checked
///         against an independent encoder.
library Sessions {
    uint8 internal constant EQ = 0;
    uint8 internal constant NE = 1;
    uint8 internal constant GT = 2;
    uint8 internal constant GTE = 3;
    uint8 internal constant LT = 4;
    uint8 internal constant LTE = 5;
    uint8 internal constant IN_RANGE = 6;
    uint8 internal constant ONE_OF = 7;
    uint8 internal constant SELF = 8;

    uint8 internal constant NATIVE = 0;
    uint8 internal constant ERC20 = 1;
    uint8 internal constant FEES = 2;

    /// @dev The fee budget sessions get unless a test says otherwise: the tests' operations may
    ///      cost up to 0.00412 ETH each ((1M + 1M + 60k gas) x 2 gwei).
    uint80 internal constant TEST_FEE_BUDGET = 10 ether;

    function encode(Session memory s) internal pure returns (bytes memory out) {
        out = abi.encodePacked(
            s.sessionKey, s.validAfter, s.validUntil, s.epoch, s.salt, s.maxUses, s.feeBudget, uint8(s.paymasters.length)
        );
        for (uint256 i = 0; i < s.paymasters.length; ++i) {
            out = abi.encodePacked(out, s.paymasters[i]);
        }
        out = abi.encodePacked(out, uint8(s.limits.length));
        for (uint256 l = 0; l < s.limits.length; ++l) {
            Limit memory lim = s.limits[l];
            out = abi.encodePacked(out, lim.kind, lim.token, lim.amount, lim.period);
        }
        out = abi.encodePacked(out, uint8(s.permissions.length));
        for (uint256 k = 0; k < s.permissions.length; ++k) {
            Permission memory p = s.permissions[k];
            out = abi.encodePacked(out, p.target, p.selector, p.valueLimit, p.maxUses, uint8(p.rules.length));
            for (uint256 i = 0; i < p.rules.length; ++i) {
                Rule memory r = p.rules[i];
                out = abi.encodePacked(out, r.arg, r.op, uint8(r.values.length), r.values);
            }
        }
    }

    function hashStruct(Session memory s) internal pure returns (bytes32) {
        bytes32[] memory limitHashes = new bytes32[](s.limits.length);
        for (uint256 l = 0; l < s.limits.length; ++l) {
            Limit memory lim = s.limits[l];
            limitHashes[l] = keccak256(
                abi.encode(
                    keccak256("Limit(uint8 kind,address token,uint128 amount,uint48 period)"),
                    lim.kind,
                    lim.token,
                    lim.amount,
                    lim.period
                )
            );
        }
        bytes32[] memory permissionHashes = new bytes32[](s.permissions.length);
        for (uint256 k = 0; k < s.permissions.length; ++k) {
            Permission memory p = s.permissions[k];
            bytes32[] memory ruleHashes = new bytes32[](p.rules.length);
            for (uint256 i = 0; i < p.rules.length; ++i) {
                ruleHashes[i] = keccak256(
                    abi.encode(
                        keccak256("Rule(uint8 arg,uint8 op,bytes32[] values)"),
                        p.rules[i].arg,
                        p.rules[i].op,
                        keccak256(abi.encodePacked(p.rules[i].values))
                    )
                );
            }
            permissionHashes[k] = keccak256(
                abi.encode(
                    keccak256(
                        "Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)Rule(uint8 arg,uint8 op,bytes32[] values)"
                    ),
                    p.target,
                    p.selector,
                    p.valueLimit,
                    p.maxUses,
                    keccak256(abi.encodePacked(ruleHashes))
                )
            );
        }
        return keccak256(
            abi.encode(
                keccak256(
                    "Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)Limit(uint8 kind,address token,uint128 amount,uint48 period)Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)Rule(uint8 arg,uint8 op,bytes32[] values)"
                ),
                s.sessionKey,
                s.validAfter,
                s.validUntil,
                s.epoch,
                s.salt,
                s.maxUses,
                s.feeBudget,
                keccak256(abi.encodePacked(s.paymasters)),
                keccak256(abi.encodePacked(limitHashes)),
                keccak256(abi.encodePacked(permissionHashes))
            )
        );
    }

    /// @notice The grant digest, computed without the validator.
    function grantDigest(Session memory s, address account, address validator, uint256 chainId)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Valet"),
                keccak256("1"),
                chainId,
                validator
            )
        );
        bytes32 grantHash = keccak256(
            abi.encode(
                keccak256(
                    "Grant(address account,Session session)Limit(uint8 kind,address token,uint128 amount,uint48 period)Permission(address target,bytes4 selector,uint128 valueLimit,uint16 maxUses,Rule[] rules)Rule(uint8 arg,uint8 op,bytes32[] values)Session(address sessionKey,uint48 validAfter,uint48 validUntil,uint64 epoch,uint32 salt,uint24 maxUses,uint80 feeBudget,address[] paymasters,Limit[] limits,Permission[] permissions)"
                ),
                account,
                hashStruct(s)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, grantHash));
    }

    // ------------------------------------------------------------ builders

    function rule(uint8 arg, uint8 op, uint256 value) internal pure returns (Rule memory r) {
        r.arg = arg;
        r.op = op;
        r.values = new bytes32[](1);
        r.values[0] = bytes32(value);
    }

    /// @dev Argument `arg` must be the account's own address.
    function self(uint8 arg) internal pure returns (Rule memory r) {
        r.arg = arg;
        r.op = SELF;
        r.values = new bytes32[](0);
    }

    function range(uint8 arg, uint256 lo, uint256 hi) internal pure returns (Rule memory r) {
        r.arg = arg;
        r.op = IN_RANGE;
        r.values = new bytes32[](2);
        r.values[0] = bytes32(lo);
        r.values[1] = bytes32(hi);
    }

    function oneOf(uint8 arg, uint256[] memory values) internal pure returns (Rule memory r) {
        r.arg = arg;
        r.op = ONE_OF;
        r.values = new bytes32[](values.length);
        for (uint256 i = 0; i < values.length; ++i) {
            r.values[i] = bytes32(values[i]);
        }
    }

    function permission(address target, bytes4 selector) internal pure returns (Permission memory p) {
        p.target = target;
        p.selector = selector;
        p.rules = new Rule[](0);
    }

    function withRule(Permission memory p, Rule memory r) internal pure returns (Permission memory) {
        Rule[] memory rules = new Rule[](p.rules.length + 1);
        for (uint256 i = 0; i < p.rules.length; ++i) {
            rules[i] = p.rules[i];
        }
        rules[p.rules.length] = r;
        p.rules = rules;
        return p;
    }

    /// @dev A session without permissions yet, with the tests' fee budget and no paymaster list.
    function session(address key, uint48 validAfter, uint48 validUntil) internal pure returns (Session memory s) {
        s.sessionKey = key;
        s.validAfter = validAfter;
        s.validUntil = validUntil;
        s.feeBudget = TEST_FEE_BUDGET;
        s.paymasters = new address[](0);
        s.limits = new Limit[](0);
        s.permissions = new Permission[](0);
    }

    function withPermission(Session memory s, Permission memory p) internal pure returns (Session memory) {
        Permission[] memory ps = new Permission[](s.permissions.length + 1);
        for (uint256 i = 0; i < s.permissions.length; ++i) {
            ps[i] = s.permissions[i];
        }
        ps[s.permissions.length] = p;
        s.permissions = ps;
        return s;
    }

    function withPaymaster(Session memory s, address paymaster) internal pure returns (Session memory) {
        address[] memory ps = new address[](s.paymasters.length + 1);
        for (uint256 i = 0; i < s.paymasters.length; ++i) {
            ps[i] = s.paymasters[i];
        }
        ps[s.paymasters.length] = paymaster;
        s.paymasters = ps;
        return s;
    }

    function withLimit(Session memory s, uint8 kind, address token, uint128 amount, uint48 period)
        internal
        pure
        returns (Session memory)
    {
        Limit[] memory ls = new Limit[](s.limits.length + 1);
        for (uint256 i = 0; i < s.limits.length; ++i) {
            ls[i] = s.limits[i];
        }
        ls[s.limits.length] = Limit(kind, token, amount, period);
        s.limits = ls;
        return s;
    }
}
