// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC7579ModuleConfig, MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ValetTestBase, IEntryPointV07} from "./utils/ValetTestBase.sol";
import {Session, Sessions, Permission} from "./utils/Sessions.sol";
import {TestPaymaster} from "./mocks/TestPaymaster.sol";
import {YesValidator, TruncatingTarget, ContractOwner} from "./mocks/Adversaries.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";
import {SessionLib} from "../src/libraries/SessionLib.sol";

/// @notice The session key holder as an attacker: it builds every field of the operation — gas
///         limits, fees, paymaster, claimed time — signs it with its key, and calls `handleOps`
///         itself with itself as beneficiary. Each test is an attack that worked before this
///         design (docs/encoding.md §10 lists them) and must be refused now, with the account's
///         ETH (balance plus EntryPoint deposit) untouched.
contract AttacksTest is ValetTestBase {
    using Sessions for Session;

    address internal constant PAYEE = address(0xFEE);
    uint256 internal constant ATTACKER_KEY = SESSION_KEY;

    address internal attacker;
    TestPaymaster internal paymaster;

    function setUp() public override {
        super.setUp();
        attacker = sessionSigner;
        paymaster = new TestPaymaster(address(entryPoint));
        paymaster.deposit{value: 10 ether}();
    }

    // ------------------------------------------------------------------ helpers

    /// @dev What the account has in ETH: its balance and its EntryPoint deposit.
    function worth() internal view returns (uint256) {
        return address(account).balance + entryPoint.balanceOf(address(account));
    }

    /// @dev An operation of `s` with the gas fields the attacker chose, signed by the session key.
    function rigged(
        Session memory,
        bytes memory callData,
        bytes memory prefix,
        uint256 preVerificationGas,
        uint256 maxFeePerGas,
        bytes memory paymasterAndData
    ) internal view returns (PackedUserOperation memory op) {
        op = newOp(address(account), sessionNonceKey(1), callData);
        op.preVerificationGas = preVerificationGas;
        op.gasFees = bytes32((maxFeePerGas << 128) | maxFeePerGas);
        op.paymasterAndData = paymasterAndData;
        op.signature = abi.encodePacked(prefix, sign65(ATTACKER_KEY, keyDigest(entryPoint.getUserOpHash(op), prefix)));
    }

    /// @dev The attacker bundles `op` itself, paid to itself; true if handleOps went through.
    function attack(PackedUserOperation memory op) internal returns (bool included, bytes memory error) {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        vm.prank(attacker, attacker);
        try entryPoint.handleOps(ops, payable(attacker)) {
            included = true;
        } catch (bytes memory reason) {
            error = reason;
        }
    }

    function refusedWith(bytes memory error, bytes memory inner) internal pure {
        assertEq(
            error, abi.encodeWithSelector(IEntryPointV07.FailedOpWithRevert.selector, 0, "AA23 reverted", inner), "refusal"
        );
    }

    /// @dev `paymasterAndData` naming `pm` with gas limits for its validation and postOp.
    function through(address pm, uint128 verification, uint128 postOp) internal pure returns (bytes memory) {
        return abi.encodePacked(pm, verification, postOp);
    }

    function maxCost(PackedUserOperation memory op) internal pure returns (uint256) {
        uint256 limits = uint256(op.accountGasLimits);
        uint256 pmGas;
        if (op.paymasterAndData.length >= 52) {
            bytes memory p = op.paymasterAndData;
            uint256 w1;
            uint256 w2;
            assembly {
                w1 := mload(add(p, 52))
                w2 := mload(add(p, 68))
            }
            pmGas = (w1 >> 128) + (w2 >> 128);
        }
        return ((limits >> 128) + uint128(limits) + pmGas + op.preVerificationGas) * uint128(uint256(op.gasFees));
    }

    function sponsoredMintSession() internal view returns (Session memory s) {
        s = mintSession();
        s.feeBudget = 0;
    }

    // ------------------------------------------------------------------ 1. fees

    /// @dev The exact attack: the demo mint session, preVerificationGas 10M at 8,000 gwei, the key
    ///      holder bundling itself. It took ~81 ETH. A session without a fee budget pays nothing.
    function test_fees_sessionWithoutBudget_cannotSpendTheAccountsEth() public {
        Session memory s = sponsoredMintSession();
        submit(sponsored(enableOp(s, mintCall(address(account), 1), 0)));
        uint256 before = worth();
        uint256 attackerBefore = attacker.balance;
        PackedUserOperation memory op =
            rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 10_000_000, 8_000 gwei, "");
        (bool included, bytes memory error) = attack(op);
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.PaymasterRequired.selector, id(s)));
        assertEq(worth(), before, "the account lost nothing");
        assertEq(attacker.balance, attackerBefore, "the attacker gained nothing");
    }

    /// @dev Also in the operation that enables the session (mode 1), and with fee 1 wei.
    function test_fees_sessionWithoutBudget_refusedInItsFirstUseToo() public {
        Session memory s = sponsoredMintSession();
        bytes memory prefix = enablePrefix(s, 0, hex"00", grant(s, address(account)));
        (bool included, bytes memory error) =
            attack(rigged(s, mintCall(address(account), 1), prefix, 60_000, 1, ""));
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.PaymasterRequired.selector, id(s)));
        // A fee of 0 costs the account nothing and is allowed (no bundler takes it, but that is theirs).
        (included,) = attack(rigged(s, mintCall(address(account), 1), prefix, 60_000, 0, ""));
        assertTrue(included, "free operation");
    }

    /// @dev With a budget, what the key holder can take is the budget, counted at each
    ///      operation's maximum cost whatever it ends up costing.
    function test_fees_budgetBoundsWhatTheKeyHolderCanTake() public {
        Session memory s = mintSession();
        s.feeBudget = 0.01 ether;
        uint256 before = worth();
        // (1M + 1M + 2M) gas at 1 gwei: 0.004 ETH at most per operation.
        PackedUserOperation memory op = rigged(
            s, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grant(s, address(account))), 2_000_000, 1 gwei, ""
        );
        uint256 cost = maxCost(op);
        assertEq(cost, 0.004 ether, "max cost");
        (bool included,) = attack(op);
        assertTrue(included, "1st within the budget");
        (included,) = attack(rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 2_000_000, 1 gwei, ""));
        assertTrue(included, "2nd within the budget");
        (, uint256 uses, uint256 feesSpent) = validator.sessionState(address(account), s.encode());
        assertEq(feesSpent, 2 * cost, "counted at the maximum cost");
        assertEq(uses, 0, "no session-wide count");
        (bool third, bytes memory error) =
            attack(rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 2_000_000, 1 gwei, ""));
        assertTrue(!third, "3rd refused");
        refusedWith(
            error, abi.encodeWithSelector(SessionKeyValidator.FeeBudgetExceeded.selector, id(s), 2 * cost, cost, 0.01 ether)
        );
        assertLe(before - worth(), 0.01 ether, "the account lost at most the budget");
    }

    /// @dev paymasterAndData naming no paymaster (address zero) with paymaster gas limits: the
    ///      account pays, and the EntryPoint's prefund includes those limits, so the count does.
    function test_fees_paymasterGasLimitsCountWhenTheAccountPays() public {
        Session memory s = mintSession();
        s.feeBudget = 0.01 ether;
        enableByOwner(s);
        PackedUserOperation memory op = rigged(
            s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 60_000, 2 gwei, through(address(0), 2_000_000, 1_000_000)
        );
        uint256 cost = maxCost(op);
        assertEq(cost, (2_060_000 + 3_000_000) * 2 gwei, "paymaster limits counted");
        (bool included, bytes memory error) = attack(op);
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.FeeBudgetExceeded.selector, id(s), 0, cost, 0.01 ether));
    }

    /// @dev Sponsored: the paymaster pays, the account pays nothing and its budget is not touched.
    function test_fees_sponsoredOperation_costsTheAccountNothing() public {
        Session memory s = sponsoredMintSession();
        uint256 before = worth();
        (bool included,) = attack(sponsored(enableOp(s, mintCall(address(account), 1), 0)));
        assertTrue(included, "sponsored");
        assertEq(worth(), before, "the account paid nothing");
        assertEq(paymaster.sponsored(), 1, "the paymaster paid");
    }

    /// @dev A session listing paymasters accepts only those (a token paymaster with an approval
    ///      from the account could otherwise charge it in tokens).
    function test_fees_onlyTheListedPaymasters() public {
        TestPaymaster other = new TestPaymaster(address(entryPoint));
        other.deposit{value: 1 ether}();
        Session memory s = sponsoredMintSession().withPaymaster(address(paymaster));
        bytes memory prefix = enablePrefix(s, 0, hex"00", grant(s, address(account)));
        (bool included, bytes memory error) =
            attack(rigged(s, mintCall(address(account), 1), prefix, 60_000, 1 gwei, through(address(other), 100_000, 0)));
        assertTrue(!included, "another paymaster refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.PaymasterNotAllowed.selector, id(s), address(other)));
        (included,) =
            attack(rigged(s, mintCall(address(account), 1), prefix, 60_000, 1 gwei, through(address(paymaster), 100_000, 0)));
        assertTrue(included, "the listed paymaster");
    }

    /// @dev A fee allowance per period (a fee limit) refills like any allowance and narrows the
    ///      window to its period.
    function test_fees_perPeriodAllowance() public {
        Session memory s = Sessions.session(sessionSigner, T0, T0 + 30 days);
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(nft), nft.mint.selector), Sessions.self(0)));
        s.feeBudget = 1 ether;
        s = s.withLimit(Sessions.FEES, address(0), 0.003 ether, 1 days);
        enableByOwner(s);
        PackedUserOperation memory op = rigged(s, mintCall(address(account), 1), usePrefix(s, T0, hex"00"), 60_000, 1 gwei, "");
        uint256 cost = maxCost(op);
        (bool included,) = attack(op);
        assertTrue(included, "day 0");
        (bool again, bytes memory error) =
            attack(rigged(s, mintCall(address(account), 1), usePrefix(s, T0, hex"00"), 60_000, 1 gwei, ""));
        assertTrue(!again, "day 0, twice");
        refusedWith(
            error, abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, cost, cost, 0.003 ether)
        );
        vm.warp(T0 + 1 days);
        (included,) = attack(rigged(s, mintCall(address(account), 1), usePrefix(s, T0 + 1 days, hex"00"), 60_000, 1 gwei, ""));
        assertTrue(included, "day 1: refilled");
    }

    function sponsored(PackedUserOperation memory op) internal view returns (PackedUserOperation memory) {
        // Re-sign with paymaster data: the userOpHash covers it.
        op.paymasterAndData = through(address(paymaster), 100_000, 0);
        bytes memory sig = op.signature;
        bytes memory prefix = new bytes(sig.length - 65);
        for (uint256 i = 0; i < prefix.length; ++i) {
            prefix[i] = sig[i];
        }
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(entryPoint.getUserOpHash(op), prefix)));
        return op;
    }

    // ------------------------------------------------------------------ 2. validity windows

    /// @dev validAfter 0 with a 1-second period let period 0 end at second 0, which the
    ///      EntryPoint reads as "no expiry": a session worked 30 days after it ended.
    function test_window_validAfterZero_refused() public {
        Session memory s = Sessions.session(sessionSigner, 0, T0 + 3600);
        Permission memory p = Sessions.permission(PAYEE, bytes4(0));
        p.valueLimit = 1;
        s = s.withPermission(p).withLimit(Sessions.NATIVE, address(0), 10, 1);
        vm.expectRevert(abi.encodeWithSelector(SessionLib.MalformedSession.selector, 20, "validAfter is zero"));
        validator.checkSessionEncoding(s.encode());
        vm.warp(T0 + 3600 + 30 days);
        (bool included, bytes memory error) = attack(
            rigged(s, single(PAYEE, 1, ""), enablePrefix(s, 0, hex"00", grant(s, address(account))), 60_000, 1 gwei, "")
        );
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionLib.MalformedSession.selector, 20, "validAfter is zero"));
        assertEq(PAYEE.balance, 0, "nothing paid");
    }

    /// @dev The same trick from validAfter 1: period 0 ends at second 1, long past.
    function test_window_periodNeverOutlivesTheSession() public {
        Session memory s = Sessions.session(sessionSigner, 1, T0 + 3600);
        Permission memory p = Sessions.permission(PAYEE, bytes4(0));
        p.valueLimit = 1;
        s = s.withPermission(p).withLimit(Sessions.NATIVE, address(0), 10, 1);
        enableByOwner(s);
        vm.warp(T0 + 3600 + 30 days);
        (bool included, bytes memory error) =
            attack(rigged(s, single(PAYEE, 1, ""), usePrefix(s, 0, hex"00"), 60_000, 1 gwei, ""));
        assertTrue(!included, "claimed time 0");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.ClaimedTimeBeforeSession.selector, 0, 1));
        (included, error) = attack(rigged(s, single(PAYEE, 1, ""), usePrefix(s, 1, hex"00"), 60_000, 1 gwei, ""));
        assertTrue(!included, "claimed time 1");
        assertEq(error, abi.encodeWithSelector(IEntryPointV07.FailedOp.selector, 0, "AA22 expired or not due"), "expired");
        assertEq(PAYEE.balance, 0, "nothing paid");
    }

    /// @dev Whatever the window, period and claimed time, the returned window lies inside the
    ///      session's and never ends at 0.
    function testFuzz_window_neverWiderThanTheSession(uint48 after_, uint48 span, uint48 period, uint48 claimed) public {
        after_ = uint48(bound(after_, 1, type(uint48).max - 2));
        span = uint48(bound(span, 1, type(uint48).max - after_));
        period = uint48(bound(period, 1, type(uint48).max));
        claimed = uint48(bound(claimed, after_, type(uint48).max));
        Session memory s = Sessions.session(sessionSigner, after_, after_ + span);
        Permission memory p = Sessions.permission(PAYEE, bytes4(0));
        p.valueLimit = 1;
        s = s.withPermission(p).withLimit(Sessions.NATIVE, address(0), 10, period);
        enableByOwner(s);
        PackedUserOperation memory op = newOp(address(account), sessionNonceKey(1), single(PAYEE, 1, ""));
        bytes memory prefix = usePrefix(s, claimed, hex"00");
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(bytes32(uint256(1)), prefix)));
        vm.prank(address(account));
        uint256 data = validator.validateUserOp(op, bytes32(uint256(1)));
        uint48 until = uint48(data >> 160);
        uint48 from = uint48(data >> 208);
        assertTrue(until != 0, "never 'no expiry'");
        assertTrue(until <= s.validUntil, "ends no later than the session");
        assertTrue(from >= s.validAfter, "starts no earlier than the session");
        assertEq(data & 1, 0, "signed");
    }

    // ------------------------------------------------------------------ 3. revoke-all

    /// @dev The owner signs a revoke-all; the key holder front-runs it by enabling a second
    ///      session from an unused grant. It used to make the revoke-all revert; now nothing can.
    function test_revokeAll_cannotBeBlockedByAFrontRunningKeyHolder() public {
        Session memory s1 = mintSession();
        Session memory s2 = mintSession();
        s2.salt = 2;
        Session memory s3 = mintSession();
        s3.salt = 3;
        bytes memory g2 = grant(s2, address(account));
        bytes memory g3 = grant(s3, address(account));
        submit(enableOp(s1, mintCall(address(account), 1), 0));
        bytes memory revokeAll = sign65(OWNER_KEY, validator.revokeAllSessionsDigest(address(account)));
        // Front-run: session 2 enabled from its grant.
        (bool included,) = attack(rigged(s2, mintCall(address(account), 1), enablePrefix(s2, 0, hex"00", g2), 60_000, 1 gwei, ""));
        assertTrue(included, "the key holder enabled session 2");
        uint64 before = validator.accountEpoch(address(account));
        validator.revokeAllSessionsWithSignature(address(account), revokeAll);
        uint64 epoch = validator.accountEpoch(address(account));
        assertTrue(epoch != before, "moved");
        bytes memory mismatch1 = abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s1), before, epoch);
        bytes memory mismatch2 = abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s2), before, epoch);
        bytes memory mismatch3 = abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s3), before, epoch);
        (, bytes memory error) = attack(rigged(s1, mintCall(address(account), 1), usePrefix(s1, 0, hex"00"), 60_000, 1 gwei, ""));
        refusedWith(error, mismatch1);
        (, error) = attack(rigged(s2, mintCall(address(account), 1), usePrefix(s2, 0, hex"00"), 60_000, 1 gwei, ""));
        refusedWith(error, mismatch2);
        (, error) = attack(rigged(s3, mintCall(address(account), 1), enablePrefix(s3, 0, hex"00", g3), 60_000, 1 gwei, ""));
        refusedWith(error, mismatch3);
        // The signature was for that epoch: replaying it now does nothing but fail.
        vm.expectRevert(
            abi.encodeWithSelector(
                SessionKeyValidator.InvalidOwnerSignature.selector, address(account), validator.revokeAllSessionsDigest(address(account))
            )
        );
        validator.revokeAllSessionsWithSignature(address(account), revokeAll);
    }

    /// @dev The key holder's enable and the owner's revoke-all in one bundle, enable first: the
    ///      enable runs in validation, before the revoke executes, and still dies with it.
    function test_revokeAll_inTheSameBundle_winsOverAnEnable() public {
        Session memory s = mintSession();
        PackedUserOperation[] memory ops = new PackedUserOperation[](2);
        ops[0] = enableOp(s, mintCall(address(account), 1), 0);
        ops[1] = ownerOp(address(account), single(address(validator), 0, abi.encodeCall(validator.revokeAllSessions, ())));
        vm.prank(attacker, attacker);
        entryPoint.handleOps(ops, payable(attacker));
        (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Voided), "voided");
        (bool included,) = attack(rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 60_000, 1 gwei, ""));
        assertTrue(!included, "dead");
    }

    // ------------------------------------------------------------------ 4. grants for future epochs

    /// @dev Grants naming epochs other than the current one — the next counter values, small
    ///      numbers, the largest — are refused now and after a revoke-all or a reinstall.
    function test_grantsForAnyOtherEpoch_neverComeAlive() public {
        uint64 current = validator.accountEpoch(address(account));
        uint64[5] memory planted = [current + 1, current + 2, 1, 2, type(uint64).max];
        Session[] memory grants = new Session[](5);
        bytes[] memory sigs = new bytes[](5);
        for (uint256 i = 0; i < 5; ++i) {
            grants[i] = mintSession();
            grants[i].epoch = planted[i];
            grants[i].salt = uint32(100 + i);
            sigs[i] = grant(grants[i], address(account));
        }
        _expectAllRefused(grants, sigs);
        vm.prank(address(account));
        validator.revokeAllSessions();
        _expectAllRefused(grants, sigs);
        submit(ownerOp(address(account), _uninstall()));
        submit(ownerOp(address(account), _install(abi.encode(owner))));
        _expectAllRefused(grants, sigs);
    }

    function _expectAllRefused(Session[] memory grants, bytes[] memory sigs) internal {
        uint64 epoch = validator.accountEpoch(address(account));
        for (uint256 i = 0; i < grants.length; ++i) {
            assertTrue(grants[i].epoch != epoch, "the epoch is none of the planted ones");
            (bool included, bytes memory error) = attack(
                rigged(grants[i], mintCall(address(account), 1), enablePrefix(grants[i], 0, hex"00", sigs[i]), 60_000, 1 gwei, "")
            );
            assertTrue(!included, "refused");
            refusedWith(
                error,
                abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(grants[i]), grants[i].epoch, epoch)
            );
        }
    }

    /// @dev The next epoch depends on the previous block: the same revoke-all in two different
    ///      chain histories gives two different epochs, neither of them the old one plus one.
    function test_nextEpoch_cannotBeKnownBeforeThePreviousBlock() public {
        uint64 old = validator.accountEpoch(address(account));
        uint256 snapshot = vm.snapshotState();
        vm.prevrandao(bytes32(uint256(1)));
        vm.prank(address(account));
        validator.revokeAllSessions();
        uint64 a = validator.accountEpoch(address(account));
        vm.revertToState(snapshot);
        vm.prevrandao(bytes32(uint256(2)));
        vm.prank(address(account));
        validator.revokeAllSessions();
        uint64 b = validator.accountEpoch(address(account));
        assertTrue(a != b, "depends on the chain");
        assertTrue(a != old + 1 && b != old + 1, "not a counter");
    }

    // ------------------------------------------------------------------ 5. other validators

    function _install(bytes memory data) internal view returns (bytes memory) {
        return single(
            address(account), 0, abi.encodeCall(IERC7579ModuleConfig.installModule, (MODULE_TYPE_VALIDATOR, address(validator), data))
        );
    }

    function _uninstall() internal view returns (bytes memory) {
        return single(
            address(account), 0, abi.encodeCall(IERC7579ModuleConfig.uninstallModule, (MODULE_TYPE_VALIDATOR, address(validator), ""))
        );
    }

    /// @dev A second validator that says yes to every ERC-1271 question (a guardian, a
    ///      co-signer): `module ‖ anything` enabled an unlimited transfer session and 90 ETH left.
    function test_anotherValidatorModule_cannotGrant() public {
        YesValidator yes = new YesValidator();
        submit(
            ownerOp(
                address(account),
                single(address(account), 0, abi.encodeCall(IERC7579ModuleConfig.installModule, (MODULE_TYPE_VALIDATOR, address(yes), "")))
            )
        );
        Session memory s = Sessions.session(sessionSigner, T0, T0 + 3600);
        Permission memory p = Sessions.permission(PAYEE, bytes4(0));
        p.valueLimit = type(uint128).max;
        s = s.withPermission(p);
        bytes memory forged = abi.encodePacked(address(yes), hex"00");
        (bool included, bytes memory error) = attack(
            rigged(s, single(PAYEE, 90 ether, ""), enablePrefix(s, 0, hex"00", forged), 60_000, 1 gwei, "")
        );
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s)));
        assertEq(PAYEE.balance, 0, "no ETH left");
    }

    function test_anotherValidatorModule_cannotRevoke() public {
        YesValidator yes = new YesValidator();
        submit(
            ownerOp(
                address(account),
                single(address(account), 0, abi.encodeCall(IERC7579ModuleConfig.installModule, (MODULE_TYPE_VALIDATOR, address(yes), "")))
            )
        );
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        bytes memory forged = abi.encodePacked(address(yes), hex"00");
        bytes32 digest = validator.revokeSessionDigest(address(account), id(s));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidOwnerSignature.selector, address(account), digest));
        validator.revokeSessionWithSignature(address(account), id(s), forged);
        digest = validator.revokeAllSessionsDigest(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidOwnerSignature.selector, address(account), digest));
        validator.revokeAllSessionsWithSignature(address(account), forged);
        submit(useOp(s, mintCall(address(account), 1), 0));
    }

    /// @dev The owner named at install may be a contract: its own ERC-1271 answers for it (and
    ///      the account's does not).
    function test_contractOwner_grantsThroughItsOwnErc1271() public {
        ContractOwner multisig = new ContractOwner(vm.addr(OTHER_KEY));
        submit(ownerOp(address(account), _uninstall()));
        submit(ownerOp(address(account), _install(abi.encode(address(multisig)))));
        assertEq(validator.accountOwner(address(account)), address(multisig), "owner");
        Session memory s = mintSession();
        s.epoch = validator.accountEpoch(address(account));
        bytes memory ownerSig = grant(s, address(account)); // the account's ECDSA owner: not the module's owner now
        (bool included, bytes memory error) =
            attack(rigged(s, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", ownerSig), 60_000, 1 gwei, ""));
        assertTrue(!included, "the account's own key does not grant");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s)));
        bytes memory multisigSig = sign65(OTHER_KEY, s.grantDigest(address(account), address(validator), block.chainid));
        (included,) =
            attack(rigged(s, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", multisigSig), 60_000, 1 gwei, ""));
        assertTrue(included, "the multisig grants");
    }

    function test_install_needsAnOwner() public {
        submit(ownerOp(address(account), _uninstall()));
        vm.prank(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidInstallData.selector, ""));
        account.installModule(MODULE_TYPE_VALIDATOR, address(validator), "");
        vm.prank(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidInstallData.selector, abi.encode(address(0))));
        account.installModule(MODULE_TYPE_VALIDATOR, address(validator), abi.encode(address(0)));
    }

    // ------------------------------------------------------------------ 6. views after uninstall

    function test_views_followUninstallAndRevokeAll() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Enabled), "enabled");
        submit(ownerOp(address(account), _uninstall()));
        (state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.NotInstalled), "not installed");
        assertTrue(!validator.isInitialized(address(account)), "uninstalled");
        // And the chain agrees: the account still routes the operation here, which refuses it.
        (, bytes memory error) = attack(rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 60_000, 1 gwei, ""));
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, address(account)));
        submit(ownerOp(address(account), _install(abi.encode(owner))));
        (state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Voided), "voided after reinstall");
    }

    // ------------------------------------------------------------------ 7. the last epoch

    /// @dev There is no last epoch any more: even from the largest value, uninstalling moves it,
    ///      and a grant for that value stays dead after reinstalling.
    function test_uninstall_movesTheEpochFromAnyValue() public {
        bytes32 slot = keccak256(abi.encode(address(account), uint256(4)));
        uint256 word = uint256(vm.load(address(validator), slot));
        uint256 largest = (word & ~(uint256(type(uint64).max) << 160)) | (uint256(type(uint64).max) << 160);
        vm.store(address(validator), slot, bytes32(largest));
        assertEq(validator.accountEpoch(address(account)), type(uint64).max, "the largest epoch");
        Session memory s = mintSession();
        s.epoch = type(uint64).max;
        bytes memory g = grant(s, address(account));
        submit(ownerOp(address(account), _uninstall()));
        submit(ownerOp(address(account), _install(abi.encode(owner))));
        uint64 epoch = validator.accountEpoch(address(account));
        assertTrue(epoch != type(uint64).max, "moved");
        (, bytes memory error) = attack(rigged(s, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", g), 60_000, 1 gwei, ""));
        refusedWith(
            error, abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s), type(uint64).max, epoch)
        );
    }

    // ------------------------------------------------------------------ noticed while reading

    /// @dev A permission naming the EntryPoint allowed `withdrawTo` of the account's deposit.
    function test_entryPoints_areNeverTargets() public {
        vm.deal(address(this), 2 ether);
        entryPoint.depositTo{value: 1 ether}(address(account));
        address[4] memory entryPoints = [
            0x5FF137D4b0FDCD49DcA30c7CF57E578a026d2789,
            address(entryPoint),
            0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108,
            0x433709009B8330FDa32311DF1C2AFA402eD8D009
        ];
        for (uint256 i = 0; i < 4; ++i) {
            Session memory s = Sessions.session(sessionSigner, T0, T0 + 3600);
            s = s.withPermission(Sessions.permission(entryPoints[i], bytes4(keccak256("withdrawTo(address,uint256)"))));
            s.salt = uint32(i);
            bytes memory call =
                single(entryPoints[i], 0, abi.encodeWithSignature("withdrawTo(address,uint256)", PAYEE, 0.5 ether));
            (bool included, bytes memory error) =
                attack(rigged(s, call, enablePrefix(s, 0, hex"00", grant(s, address(account))), 60_000, 1 gwei, ""));
            assertTrue(!included, "refused");
            refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.ForbiddenTarget.selector, 0, entryPoints[i]));
        }
        assertEq(PAYEE.balance, 0, "the deposit stayed");
    }

    /// @dev A token limit counted transfer/transferFrom/approve/increaseAllowance, but a permission
    ///      on the same token for another function moved it uncounted: such sessions are refused.
    function test_tokenLimit_refusesUncountedFunctionsOfThatToken() public {
        bytes4[4] memory uncounted =
            [bytes4(keccak256("burn(uint256)")), bytes4(keccak256("transferAndCall(address,uint256,bytes)")), bytes4(keccak256("send(address,uint256,bytes)")), bytes4(0)];
        for (uint256 i = 0; i < uncounted.length; ++i) {
            Session memory s = Sessions.session(sessionSigner, T0, T0 + 3600);
            s = s.withPermission(Sessions.permission(address(token), IERC20.transfer.selector));
            s = s.withPermission(Sessions.permission(address(token), uncounted[i]));
            s = s.withLimit(Sessions.ERC20, address(token), 1 ether, 0);
            // header 58, no paymasters, the limit count, one limit, the permission count, permission 0 (43)
            uint256 at = 58 + 1 + 43 + 1 + 43 + 20;
            bytes memory malformed = abi.encodeWithSelector(
                SessionLib.MalformedSession.selector, at, "function on a limited token that its limit does not count"
            );
            (bool ok, bytes memory ret) = address(validator).call(abi.encodeCall(validator.checkSessionEncoding, (s.encode())));
            assertTrue(!ok, "refused");
            assertEq(ret, malformed, "reason");
            (bool included, bytes memory error) = attack(
                rigged(s, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grant(s, address(account))), 60_000, 1 gwei, "")
            );
            assertTrue(!included, "refused on chain");
            refusedWith(error, malformed);
        }
        // Counted functions, and other contracts, are fine.
        Session memory ok_ = Sessions.session(sessionSigner, T0, T0 + 3600);
        ok_ = ok_.withPermission(Sessions.permission(address(token), IERC20.approve.selector));
        ok_ = ok_.withPermission(Sessions.permission(address(nft), bytes4(keccak256("burn(uint256)"))));
        ok_ = ok_.withLimit(Sessions.ERC20, address(token), 1 ether, 0);
        validator.checkSessionEncoding(ok_.encode());
    }

    /// @dev Rules compare whole words. On a `uint8` argument a target that truncates reads
    ///      0x103 as 3: a raw `>= 100` passes it. Valet's spec compiler therefore writes ordering
    ///      rules on narrow types with the type's maximum as upper bound (`IN_RANGE [100, 255]`),
    ///      which refuses any word with bits beyond the type (valet-core's spec tests check the
    ///      compiler does).
    function test_narrowArgument_dirtyBits_refusedByTheCompiledRule() public {
        TruncatingTarget target = new TruncatingTarget();
        bytes4 setLevel = bytes4(keccak256("setLevel(uint8)"));
        bytes memory dirty = single(address(target), 0, abi.encodeWithSelector(setLevel, uint256(0x103)));

        Session memory raw = Sessions.session(sessionSigner, T0, T0 + 3600);
        raw = raw.withPermission(Sessions.withRule(Sessions.permission(address(target), setLevel), Sessions.rule(0, Sessions.GTE, 100)));
        submit(enableOp(raw, dirty, 0));
        assertEq(target.lastLevel(), 3, "a raw word rule lets the dirty word through");

        Session memory compiled = Sessions.session(sessionSigner, T0, T0 + 3600);
        compiled.salt = 1;
        compiled = compiled.withPermission(Sessions.withRule(Sessions.permission(address(target), setLevel), Sessions.range(0, 100, 255)));
        (bool included, bytes memory error) =
            attack(rigged(compiled, dirty, enablePrefix(compiled, 0, hex"00", grant(compiled, address(account))), 60_000, 1 gwei, ""));
        assertTrue(!included, "refused");
        refusedWith(error, abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, 0, 0, 0, 0, 0x103));
    }

    /// @dev The gas and fee fields are covered by the userOpHash the key signed: changing any of
    ///      them after signing (a relayer raising the fee) is a signature failure.
    function test_gasFieldsChangedAfterSigning_failTheSignature() public {
        Session memory s = mintSession();
        enableByOwner(s);
        PackedUserOperation memory op = rigged(s, mintCall(address(account), 1), usePrefix(s, 0, hex"00"), 60_000, 1 gwei, "");
        op.gasFees = bytes32((uint256(2 gwei) << 128) | 2 gwei);
        (bool included, bytes memory error) = attack(op);
        assertTrue(!included, "refused");
        assertEq(error, abi.encodeWithSelector(IEntryPointV07.FailedOp.selector, 0, "AA24 signature error"), "AA24");
    }
}
