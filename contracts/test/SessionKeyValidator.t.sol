// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC7579ModuleConfig, MODULE_TYPE_VALIDATOR} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {ValetTestBase, IEntryPointV07} from "./utils/ValetTestBase.sol";
import {Session, Sessions, Rule, Permission} from "./utils/Sessions.sol";
import {Recorder} from "./mocks/Recorder.sol";
import {SessionKeyValidator} from "../src/SessionKeyValidator.sol";
import {SessionLib} from "../src/libraries/SessionLib.sol";
import {ValetAccount} from "../src/ValetAccount.sol";
import {ValetNFT} from "../src/demo/ValetNFT.sol";
import {ValetDAO} from "../src/demo/ValetDAO.sol";

/// @notice Every session behaviour, accepted and refused, through the real EntryPoint v0.7.
contract SessionKeyValidatorTest is ValetTestBase {
    using Sessions for Session;

    Recorder internal rec;
    address internal constant PAYEE = address(0xFEE);

    function setUp() public override {
        super.setUp();
        rec = new Recorder();
    }

    // ------------------------------------------------------------------ helpers

    function recordCall(uint256 a, uint256 b, uint256 c) internal view returns (bytes memory) {
        return single(address(rec), 0, abi.encodeCall(Recorder.record, (a, b, c)));
    }

    function ruleSession(Rule memory r) internal view returns (Session memory s) {
        s = Sessions.session(sessionSigner, T0, T0 + 3600);
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(rec), Recorder.record.selector), r));
    }

    function err(bytes4 selector, uint256 a) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, a);
    }

    function ruleViolated(uint256 callIndex, uint256 perm, uint256 rule, uint256 arg, uint256 value)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(SessionKeyValidator.RuleViolated.selector, callIndex, perm, rule, arg, value);
    }

    function transferCall(address token_, address to, uint256 amount) internal pure returns (bytes memory) {
        return single(token_, 0, abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    // ------------------------------------------------------------------ the demo story

    function test_demoStory_tenMintsThenEleventhRefused() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 5), 0));
        for (uint256 i = 1; i < 10; ++i) {
            submit(useOp(s, mintCall(address(account), 1 + (i % 5)), 0));
        }
        assertEq(validator.permissionUses(address(account), id(s), 0), 10, "ten uses counted");
        uint256 minted = nft.balanceOf(address(account));

        // Quantity 6 breaks rule 1 (quantity <= 5) before the use count is even looked at.
        submitExpectingRevert(useOp(s, mintCall(address(account), 6), 0), ruleViolated(0, 0, 1, 1, 6));
        // The eleventh mint is refused: the permission's 10 uses are spent.
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.PermissionUsesExhausted.selector, id(s), 0, 10)
        );
        assertEq(nft.balanceOf(address(account)), minted, "nothing minted after the refusals");
    }

    function test_mint_toAnotherAddress_refusedBySelfRule() public {
        Session memory s = mintSession();
        submitExpectingRevert(
            enableOp(s, mintCall(address(0xBEEF), 1), 0), ruleViolated(0, 0, 0, 0, uint256(uint160(address(0xBEEF))))
        );
    }

    // ------------------------------------------------------------------ enabling

    function test_enableInFirstUse_enablesCountsAndEmits() public {
        Session memory s = mintSession();
        vm.expectEmit(true, true, true, true, address(validator));
        emit SessionKeyValidator.SessionEnabled(address(account), id(s), sessionSigner, s.validAfter, s.validUntil);
        submit(enableOp(s, mintCall(address(account), 2), 0));
        (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Enabled), "enabled");
        assertEq(nft.balanceOf(address(account)), 2, "minted");
    }

    function test_enableInFirstUse_onUndeployedAccount_deploysEnablesAndMints() public {
        address fresh = factory.getAddress(owner, 42);
        assertEq(fresh.code.length, 0, "not deployed yet");
        vm.deal(fresh, 1 ether);
        Session memory s = mintSession(); // the SELF rule binds `to` to whichever account uses it
        PackedUserOperation memory op = newOp(fresh, sessionNonceKey(7), mintCall(fresh, 3));
        op.initCode = abi.encodePacked(address(factory), abi.encodeCall(factory.createAccount, (owner, 42)));
        bytes memory prefix = enablePrefix(s, 0, hex"00", grant(s, fresh));
        op.signature = abi.encodePacked(prefix, sign65(SESSION_KEY, keyDigest(entryPoint.getUserOpHash(op), prefix)));
        submit(op);
        assertTrue(fresh.code.length > 0, "deployed");
        assertEq(nft.balanceOf(fresh), 3, "minted in the same operation");
        assertEq(ValetAccount(payable(fresh)).owner(), owner, "owned by the owner");
        assertTrue(ValetAccount(payable(fresh)).isModuleInstalled(MODULE_TYPE_VALIDATOR, address(validator), ""), "validator installed");
    }

    function test_enableSession_byAccount_thenUse() public {
        Session memory s = mintSession();
        enableByOwner(s);
        submit(useOp(s, mintCall(address(account), 1), 0));
        assertEq(nft.balanceOf(address(account)), 1, "minted");
    }

    function test_enable_whenAlreadyEnabled_reverts() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        submitExpectingRevert(
            enableOp(s, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.SessionAlreadyEnabled.selector, id(s))
        );
    }

    function test_use_beforeEnable_reverts() public {
        Session memory s = mintSession();
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.SessionNotEnabled.selector, id(s))
        );
    }

    function test_grant_signedByAnotherKey_reverts() public {
        Session memory s = mintSession();
        bytes memory forged = sign65(OTHER_KEY, Sessions.grantDigest(s, address(account), address(validator), block.chainid));
        submitExpectingRevert(
            sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", forged), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
    }

    function test_grant_replayedOnAnotherAccount_reverts() public {
        ValetAccount second = factory.createAccount(owner, 1); // same owner, another account
        vm.deal(address(second), 1 ether);
        Session memory s = mintSession();
        bytes memory grantForFirst = grant(s, address(account));
        submitExpectingRevert(
            sessionOp(address(second), 1, mintCall(address(second), 1), enablePrefix(s, 0, hex"00", grantForFirst), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(second), id(s))
        );
    }

    function test_grant_replayedOnAnotherChain_reverts() public {
        Session memory s = mintSession();
        bytes memory grantHere = grant(s, address(account));
        vm.chainId(block.chainid + 1);
        submitExpectingRevert(
            sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grantHere), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.InvalidGrantSignature.selector, address(account), id(s))
        );
    }

    function test_grantDigest_matchesIndependentImplementation() public view {
        Session memory s = mintSession();
        s = s.withLimit(1, address(token), 50 ether, 1 days);
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(dao), ValetDAO.castVote.selector), Sessions.range(1, 0, 2)));
        assertEq(
            validator.grantDigest(address(account), s.encode()),
            Sessions.grantDigest(s, address(account), address(validator), block.chainid),
            "grant digest"
        );
        assertEq(validator.sessionId(s.encode()), id(s), "session id");
    }

    // ------------------------------------------------------------------ session key signature

    function test_sessionKey_wrongKey_failsSignature() public {
        Session memory s = mintSession();
        PackedUserOperation memory op = sessionOp(
            address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grant(s, address(account))), OTHER_KEY
        );
        submitExpectingFailedOp(op, "AA24 signature error");
    }

    function test_sessionKey_signingForAnotherKeysSession_failsSignature() public {
        Session memory mine = mintSession();
        Session memory theirs = mintSession();
        theirs.sessionKey = vm.addr(OTHER_KEY);
        submit(enableOp(mine, mintCall(address(account), 1), 0));
        submit(
            sessionOp(
                address(account), 2, mintCall(address(account), 1), enablePrefix(theirs, 0, hex"00", grant(theirs, address(account))), OTHER_KEY
            )
        );
        // OTHER_KEY signs an operation that names `mine`: the signature is not mine's key.
        submitExpectingFailedOp(
            sessionOp(address(account), 2, mintCall(address(account), 1), usePrefix(mine, 0, hex"00"), OTHER_KEY),
            "AA24 signature error"
        );
    }

    function test_dummySignature_returnsSigFailedWithoutReverting() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        PackedUserOperation memory op = newOp(address(account), sessionNonceKey(1), mintCall(address(account), 1));
        // The well-formed dummy signature bundlers estimate with.
        op.signature = abi.encodePacked(
            usePrefix(s, 0, hex"00"),
            hex"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00",
            hex"7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            hex"1c"
        );
        vm.prank(address(account));
        uint256 data = validator.validateUserOp(op, keccak256("anything"));
        assertEq(data & 1, 1, "signature failed flag");
        assertEq(uint48(data >> 160), s.validUntil, "validUntil");
        assertEq(uint48(data >> 208), s.validAfter, "validAfter");
    }

    // ------------------------------------------------------------------ rules

    function _ruleCase(Rule memory r, uint256 good, uint256 bad, uint32 salt) internal {
        Session memory s = ruleSession(r);
        s.salt = salt;
        submit(sessionOp(address(account), salt, recordCall(good, 0, 0), enablePrefix(s, 0, hex"00", grant(s, address(account))), SESSION_KEY));
        assertEq(rec.a(), good, "accepted value recorded");
        submitExpectingRevert(
            sessionOp(address(account), salt, recordCall(bad, 0, 0), usePrefix(s, 0, hex"00"), SESSION_KEY), ruleViolated(0, 0, 0, 0, bad)
        );
    }

    function test_rules_eachOp_acceptsAndRefuses() public {
        _ruleCase(Sessions.rule(0, Sessions.EQ, 7), 7, 8, 1);
        _ruleCase(Sessions.rule(0, Sessions.NE, 7), 8, 7, 2);
        _ruleCase(Sessions.rule(0, Sessions.GT, 7), 8, 7, 3);
        _ruleCase(Sessions.rule(0, Sessions.GTE, 7), 7, 6, 4);
        _ruleCase(Sessions.rule(0, Sessions.LT, 7), 6, 7, 5);
        _ruleCase(Sessions.rule(0, Sessions.LTE, 7), 7, 8, 6);
        _ruleCase(Sessions.range(0, 5, 9), 5, 4, 7);
        _ruleCase(Sessions.range(0, 5, 9), 9, 10, 8);
        uint256[] memory set = new uint256[](3);
        (set[0], set[1], set[2]) = (3, 5, 9);
        _ruleCase(Sessions.oneOf(0, set), 9, 4, 9);
        _ruleCase(Sessions.self(0), uint256(uint160(address(account))), uint256(uint160(address(rec))), 10);
    }

    function test_rules_everyRuleMustPass() public {
        Session memory s = Sessions.session(sessionSigner, T0, T0 + 3600);
        Permission memory p = Sessions.permission(address(rec), Recorder.record.selector);
        p = Sessions.withRule(p, Sessions.rule(0, Sessions.LTE, 10));
        p = Sessions.withRule(p, Sessions.rule(2, Sessions.EQ, 42));
        s = s.withPermission(p);
        submitExpectingRevert(enableOp(s, recordCall(5, 0, 41), 0), ruleViolated(0, 0, 1, 2, 41));
        submit(enableOp(s, recordCall(5, 0, 42), 0));
        assertEq(rec.c(), 42, "recorded");
    }

    function test_rule_onMissingArgument_reverts() public {
        Session memory s = ruleSession(Sessions.rule(5, Sessions.EQ, 0));
        submitExpectingRevert(
            enableOp(s, recordCall(0, 0, 0), 0), abi.encodeWithSelector(SessionKeyValidator.ArgumentMissing.selector, 0, 0, 0, 5)
        );
    }

    // ------------------------------------------------------------------ permissions

    function test_call_wrongTargetOrSelector_reverts() public {
        Session memory s = mintSession();
        submitExpectingRevert(
            enableOp(s, single(address(rec), 0, abi.encodeCall(ValetNFT.mint, (address(account), 1))), 0),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 0, 0, address(rec), ValetNFT.mint.selector)
        );
        bytes memory approveAll = abi.encodeWithSignature("setApprovalForAll(address,bool)", address(0xBAD), true);
        submitExpectingRevert(
            enableOp(s, single(address(nft), 0, approveAll), 0),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 0, 0, address(nft), bytes4(approveAll))
        );
    }

    function test_call_permissionIndexOutOfRange_reverts() public {
        Session memory s = mintSession();
        submitExpectingRevert(
            sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"01", grant(s, address(account))), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.PermissionIndexOutOfRange.selector, 0, 1, 1)
        );
    }

    function test_secondPermission_isUsedByIndex() public {
        Session memory s = mintSession();
        s = s.withPermission(Sessions.permission(address(rec), Recorder.record.selector));
        submit(sessionOp(address(account), 1, recordCall(1, 2, 3), enablePrefix(s, 0, hex"01", grant(s, address(account))), SESSION_KEY));
        assertEq(rec.calls(), 1, "second permission used");
        assertEq(validator.permissionUses(address(account), id(s), 0), 0, "first permission untouched");
    }

    function test_value_withinAndAboveTheCallCap() public {
        Session memory s = ruleSession(Sessions.rule(0, Sessions.LTE, 100));
        s.permissions[0].valueLimit = 1 ether;
        submit(enableOp(s, single(address(rec), 1 ether, abi.encodeCall(Recorder.record, (1, 0, 0))), 0));
        assertEq(rec.received(), 1 ether, "value sent");
        submitExpectingRevert(
            useOp(s, single(address(rec), 1 ether + 1, abi.encodeCall(Recorder.record, (1, 0, 0))), 0),
            abi.encodeWithSelector(SessionKeyValidator.ValueLimitExceeded.selector, 0, 0, 1 ether + 1, 1 ether)
        );
    }

    function test_value_noCapMeansNoValue() public {
        Session memory s = ruleSession(Sessions.rule(0, Sessions.LTE, 100));
        submitExpectingRevert(
            enableOp(s, single(address(rec), 1, abi.encodeCall(Recorder.record, (1, 0, 0))), 0),
            abi.encodeWithSelector(SessionKeyValidator.ValueLimitExceeded.selector, 0, 0, 1, 0)
        );
    }

    function test_plainTransfer_emptyCalldataOnly() public {
        Session memory s = oneShot(PAYEE, bytes4(0));
        s.permissions[0].valueLimit = 1 ether;
        submit(enableOp(s, single(PAYEE, 0.5 ether, ""), 0));
        assertEq(PAYEE.balance, 0.5 ether, "paid");
        submitExpectingRevert(
            useOp(s, single(PAYEE, 0.5 ether, hex"01"), 0),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 0, 0, PAYEE, bytes4(0x01000000))
        );
        // Selector 0 is not a wildcard for calldata that happens to start with four zero bytes.
        submitExpectingRevert(
            useOp(s, single(PAYEE, 0, hex"00000000deadbeef"), 0),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 0, 0, PAYEE, bytes4(0))
        );
    }

    function test_shortCalldata_matchesNoSelector() public {
        Session memory s = oneShot(address(rec), bytes4(0xffffffff));
        submitExpectingRevert(
            enableOp(s, single(address(rec), 0, hex"ffff"), 0),
            abi.encodeWithSelector(SessionKeyValidator.CallNotPermitted.selector, 0, 0, address(rec), bytes4(0xffff0000))
        );
    }

    function test_enableSession_needsTheValidatorInstalled() public {
        Session memory s = mintSession();
        vm.prank(address(0xA11));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, address(0xA11)));
        validator.enableSession(s.encode());
    }

    // ------------------------------------------------------------------ what the session key signs

    function test_relayer_cannotRenamePermission() public {
        // Two permissions both allow the mint; the key chose permission 1 (uncounted).
        Session memory s = mintSession();
        s = s.withPermission(Sessions.withRule(Sessions.permission(address(nft), ValetNFT.mint.selector), Sessions.self(0)));
        submit(sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"01", grant(s, address(account))), SESSION_KEY));
        PackedUserOperation memory op = sessionOp(address(account), 1, mintCall(address(account), 1), usePrefix(s, 0, hex"01"), SESSION_KEY);
        // A relayer points the call at permission 0 to burn its use count: the key's signature no longer matches.
        bytes memory sig = op.signature;
        sig[3 + s.encode().length + 7] = 0x00;
        submitExpectingFailedOp(op, "AA24 signature error");
        assertEq(validator.permissionUses(address(account), id(s), 0), 0, "permission 0 untouched");
    }

    function test_relayer_cannotSwapToAnotherSessionOfTheSameKey() public {
        Session memory a = mintSession();
        Session memory b = mintSession();
        b.salt = 5;
        submit(enableOp(a, mintCall(address(account), 1), 0));
        submit(sessionOp(address(account), 2, mintCall(address(account), 1), enablePrefix(b, 0, hex"00", grant(b, address(account))), SESSION_KEY));
        PackedUserOperation memory op = sessionOp(address(account), 1, mintCall(address(account), 1), usePrefix(a, 0, hex"00"), SESSION_KEY);
        bytes memory keySig = new bytes(65);
        for (uint256 i = 0; i < 65; ++i) {
            keySig[i] = op.signature[op.signature.length - 65 + i];
        }
        op.signature = abi.encodePacked(usePrefix(b, 0, hex"00"), keySig);
        submitExpectingFailedOp(op, "AA24 signature error");
    }

    function test_permissionMaxUses_countsCallsInABatch() public {
        Session memory s = ruleSession(Sessions.rule(0, Sessions.LTE, 100));
        s.permissions[0].maxUses = 3;
        Call[] memory calls = new Call[](2);
        calls[0] = Call(address(rec), 0, abi.encodeCall(Recorder.record, (1, 0, 0)));
        calls[1] = Call(address(rec), 0, abi.encodeCall(Recorder.record, (2, 0, 0)));
        submit(sessionOp(address(account), 1, batch(calls), enablePrefix(s, 0, hex"0000", grant(s, address(account))), SESSION_KEY));
        assertEq(validator.permissionUses(address(account), id(s), 0), 2, "two calls counted");
        submitExpectingRevert(
            sessionOp(address(account), 1, batch(calls), usePrefix(s, 0, hex"0000"), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.PermissionUsesExhausted.selector, id(s), 0, 3)
        );
    }

    function test_sessionMaxUses_countsOperations() public {
        Session memory s = ruleSession(Sessions.rule(0, Sessions.LTE, 100));
        s.maxUses = 2;
        submit(enableOp(s, recordCall(1, 0, 0), 0));
        submit(useOp(s, recordCall(2, 0, 0), 0));
        (, uint256 uses,) = validator.sessionState(address(account), s.encode());
        assertEq(uses, 2, "two operations");
        submitExpectingRevert(
            useOp(s, recordCall(3, 0, 0), 0), abi.encodeWithSelector(SessionKeyValidator.SessionUsesExhausted.selector, id(s), 2)
        );
    }

    // ------------------------------------------------------------------ limits

    function test_nativeLimit_acrossUses() public {
        Session memory s = oneShot(PAYEE, bytes4(0));
        s.permissions[0].valueLimit = 1 ether;
        s = s.withLimit(0, address(0), 1 ether, 0);
        submit(enableOp(s, single(PAYEE, 0.4 ether, ""), 0));
        submit(useOp(s, single(PAYEE, 0.4 ether, ""), 0));
        submitExpectingRevert(
            useOp(s, single(PAYEE, 0.4 ether, ""), 0),
            abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, 0.8 ether, 0.4 ether, 1 ether)
        );
        (uint256 spent,) = validator.limitUsage(address(account), id(s), 0);
        assertEq(spent, 0.8 ether, "spent");
    }

    function _tokenSession(bytes4 selector) internal view returns (Session memory s) {
        s = oneShot(address(token), selector);
        s = s.withLimit(1, address(token), 10 ether, 0);
    }

    function test_erc20Limit_countsTransferApproveTransferFromAndIncreaseAllowance() public {
        Session memory s = _tokenSession(IERC20.transfer.selector);
        s = s.withPermission(Sessions.permission(address(token), IERC20.approve.selector));
        s = s.withPermission(Sessions.permission(address(token), IERC20.transferFrom.selector));
        s = s.withPermission(Sessions.permission(address(token), bytes4(keccak256("increaseAllowance(address,uint256)"))));
        submit(enableOp(s, transferCall(address(token), PAYEE, 3 ether), 0));
        submit(useOp(s, single(address(token), 0, abi.encodeCall(IERC20.approve, (PAYEE, 4 ether))), 1));
        (uint256 spent,) = validator.limitUsage(address(account), id(s), 0);
        assertEq(spent, 7 ether, "an approval is spending power");
        // approve(0) revokes an allowance and spends nothing.
        submit(useOp(s, single(address(token), 0, abi.encodeCall(IERC20.approve, (PAYEE, 0))), 1));
        (spent,) = validator.limitUsage(address(account), id(s), 0);
        assertEq(spent, 7 ether, "approve(0) is free");
        // transferFrom counts its third word.
        bytes memory pull = abi.encodeCall(IERC20.transferFrom, (PAYEE, address(account), 4 ether));
        submitExpectingRevert(
            useOp(s, single(address(token), 0, pull), 2),
            abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, 7 ether, 4 ether, 10 ether)
        );
        // increaseAllowance counts its second word (the call itself fails on this token, after validation).
        bytes memory more = abi.encodeWithSignature("increaseAllowance(address,uint256)", PAYEE, 3 ether + 1);
        submitExpectingRevert(
            useOp(s, single(address(token), 0, more), 3),
            abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, 7 ether, 3 ether + 1, 10 ether)
        );
    }

    function test_erc20Limit_batchSumsEveryCall() public {
        Session memory s = _tokenSession(IERC20.transfer.selector);
        Call[] memory calls = new Call[](3);
        for (uint256 i = 0; i < 3; ++i) {
            calls[i] = Call(address(token), 0, abi.encodeCall(IERC20.transfer, (PAYEE, 4 ether)));
        }
        submitExpectingRevert(
            sessionOp(address(account), 1, batch(calls), enablePrefix(s, 0, hex"000000", grant(s, address(account))), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, 0, 12 ether, 10 ether)
        );
    }

    function test_erc20Limit_ignoresOtherTokens() public {
        Session memory s = oneShot(address(rec), Recorder.record.selector);
        s = s.withLimit(1, address(token), 1, 0);
        submit(enableOp(s, recordCall(5 ether, 5 ether, 5 ether), 0));
        (uint256 spent,) = validator.limitUsage(address(account), id(s), 0);
        assertEq(spent, 0, "a call to another contract spends none of the token");
    }

    function test_periodicAllowance_refillsEveryPeriod() public {
        Session memory s = _tokenSession(IERC20.transfer.selector);
        s.validUntil = T0 + 30 days;
        s.limits[0].period = 1 days;
        submit(sessionOp(address(account), 1, transferCall(address(token), PAYEE, 6 ether), enablePrefix(s, T0, hex"00", grant(s, address(account))), SESSION_KEY));
        submitExpectingRevert(
            sessionOp(address(account), 1, transferCall(address(token), PAYEE, 5 ether), usePrefix(s, T0 + 1 hours, hex"00"), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.LimitExceeded.selector, id(s), 0, 6 ether, 5 ether, 10 ether)
        );
        vm.warp(T0 + 1 days + 1);
        submit(sessionOp(address(account), 1, transferCall(address(token), PAYEE, 5 ether), usePrefix(s, T0 + 1 days, hex"00"), SESSION_KEY));
        (uint256 spent, uint256 period) = validator.limitUsage(address(account), id(s), 0);
        assertEq(spent, 5 ether, "spent this period");
        assertEq(period, 1, "second period");
        assertEq(token.balanceOf(PAYEE), 11 ether, "paid across two periods");
    }

    function test_periodicAllowance_windowIsThePeriod() public {
        Session memory s = _tokenSession(IERC20.transfer.selector);
        s.validUntil = T0 + 30 days;
        s.limits[0].period = 1 days;
        // Claiming period 0 while the chain is in period 1: the EntryPoint refuses the window.
        vm.warp(T0 + 1 days);
        submitExpectingFailedOp(
            sessionOp(address(account), 1, transferCall(address(token), PAYEE, 1 ether), enablePrefix(s, T0, hex"00", grant(s, address(account))), SESSION_KEY),
            "AA22 expired or not due"
        );
        PackedUserOperation memory op = sessionOp(
            address(account), 1, transferCall(address(token), PAYEE, 1 ether), enablePrefix(s, T0 + 1 days, hex"00", grant(s, address(account))), SESSION_KEY
        );
        vm.prank(address(account));
        uint256 data = validator.validateUserOp(op, keccak256("x"));
        assertEq(uint48(data >> 208), T0 + 1 days, "window starts with the period");
        assertEq(uint48(data >> 160), T0 + 2 days - 1, "and ends with it");
    }

    function test_periodicAllowance_pastPeriodOrBeforeSession_reverts() public {
        Session memory s = _tokenSession(IERC20.transfer.selector);
        s.validUntil = T0 + 30 days;
        s.limits[0].period = 1 days;
        vm.warp(T0 + 1 days);
        submit(sessionOp(address(account), 1, transferCall(address(token), PAYEE, 1 ether), enablePrefix(s, T0 + 1 days, hex"00", grant(s, address(account))), SESSION_KEY));
        submitExpectingRevert(
            sessionOp(address(account), 1, transferCall(address(token), PAYEE, 1 ether), usePrefix(s, T0, hex"00"), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.PeriodElapsed.selector, id(s), 0, 0, 1)
        );
        submitExpectingRevert(
            sessionOp(address(account), 1, transferCall(address(token), PAYEE, 1 ether), usePrefix(s, T0 - 1, hex"00"), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.ClaimedTimeBeforeSession.selector, T0 - 1, T0)
        );
    }

    // ------------------------------------------------------------------ time

    function test_expiredSession_refusedByEntryPoint() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        vm.warp(s.validUntil + 1);
        submitExpectingFailedOp(useOp(s, mintCall(address(account), 1), 0), "AA22 expired or not due");
    }

    function test_notYetValidSession_refusedByEntryPoint() public {
        Session memory s = mintSession();
        s.validAfter = T0 + 100;
        submitExpectingFailedOp(enableOp(s, mintCall(address(account), 1), 0), "AA22 expired or not due");
        vm.warp(T0 + 100);
        submit(enableOp(s, mintCall(address(account), 1), 0));
        assertEq(nft.balanceOf(address(account)), 1, "valid from validAfter on");
    }

    // ------------------------------------------------------------------ revocation

    function test_revokeSession_stopsUseAndReEnable() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        submit(ownerOp(address(account), single(address(validator), 0, abi.encodeCall(validator.revokeSession, (id(s))))));
        (SessionKeyValidator.SessionState state,,) = validator.sessionState(address(account), s.encode());
        assertEq(uint256(state), uint256(SessionKeyValidator.SessionState.Revoked), "revoked");
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0), abi.encodeWithSelector(SessionKeyValidator.SessionIsRevoked.selector, id(s))
        );
        // The grant can't bring it back either.
        submitExpectingRevert(
            sessionOp(address(account), 2, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grant(s, address(account))), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.SessionIsRevoked.selector, id(s))
        );
    }

    function test_revokeSession_beforeFirstUse_voidsTheGrant() public {
        Session memory s = mintSession();
        vm.prank(address(account));
        validator.revokeSession(id(s));
        submitExpectingRevert(
            enableOp(s, mintCall(address(account), 1), 0), abi.encodeWithSelector(SessionKeyValidator.SessionIsRevoked.selector, id(s))
        );
    }

    function test_revokeAll_endsEveryEnabledSession() public {
        Session memory a = mintSession();
        Session memory b = mintSession();
        b.salt = 1;
        submit(enableOp(a, mintCall(address(account), 1), 0));
        submit(sessionOp(address(account), 2, mintCall(address(account), 1), enablePrefix(b, 0, hex"00", grant(b, address(account))), SESSION_KEY));
        vm.expectEmit(true, false, false, false, address(validator));
        emit SessionKeyValidator.SessionsVoided(address(account), 0);
        submit(ownerOp(address(account), single(address(validator), 0, abi.encodeCall(validator.revokeAllSessions, ()))));
        uint64 epoch = validator.accountEpoch(address(account));
        assertTrue(epoch != 0, "epoch moved");
        submitExpectingRevert(
            useOp(a, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(a), 0, epoch)
        );
        submitExpectingRevert(
            sessionOp(address(account), 2, mintCall(address(account), 1), usePrefix(b, 0, hex"00"), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(b), 0, epoch)
        );
    }

    function test_revokeAll_voidsGrantsNotYetUsed() public {
        Session memory s = mintSession();
        bytes memory grantAtEpoch0 = grant(s, address(account));
        vm.prank(address(account));
        validator.revokeAllSessions();
        uint64 epoch = validator.accountEpoch(address(account));
        submitExpectingRevert(
            sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(s, 0, hex"00", grantAtEpoch0), SESSION_KEY),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s), 0, epoch)
        );
        // A new grant carries the new epoch.
        s.epoch = epoch;
        submit(enableOp(s, mintCall(address(account), 1), 0));
        assertEq(nft.balanceOf(address(account)), 1, "granted again under the new epoch");
    }

    function test_revokeWithOwnerSignature_byAnyone() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        bytes memory sig = sign65(OWNER_KEY, validator.revokeSessionDigest(address(account), id(s)));
        bytes memory forged = sign65(OTHER_KEY, validator.revokeSessionDigest(address(account), id(s)));
        vm.expectRevert(
            abi.encodeWithSelector(
                SessionKeyValidator.InvalidOwnerSignature.selector, address(account), validator.revokeSessionDigest(address(account), id(s))
            )
        );
        validator.revokeSessionWithSignature(address(account), id(s), forged);
        vm.expectEmit(true, true, false, false, address(validator));
        emit SessionKeyValidator.SessionRevoked(address(account), id(s));
        validator.revokeSessionWithSignature(address(account), id(s), sig);
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0), abi.encodeWithSelector(SessionKeyValidator.SessionIsRevoked.selector, id(s))
        );
    }

    function test_revokeAllWithOwnerSignature_byAnyone() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        bytes32 digest = validator.revokeAllSessionsDigest(address(account));
        bytes memory sig = sign65(OWNER_KEY, digest);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidOwnerSignature.selector, address(account), digest));
        validator.revokeAllSessionsWithSignature(address(account), sign65(OTHER_KEY, digest));
        vm.prank(address(0xBEEF));
        validator.revokeAllSessionsWithSignature(address(account), sig);
        uint64 epoch = validator.accountEpoch(address(account));
        assertTrue(epoch != 0, "epoch moved");
        // The signature named the old epoch: it works once.
        bytes32 digestNow = validator.revokeAllSessionsDigest(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.InvalidOwnerSignature.selector, address(account), digestNow));
        validator.revokeAllSessionsWithSignature(address(account), sig);
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s), 0, epoch)
        );
    }

    function test_uninstall_stopsSessions_andReinstallKeepsThemVoid() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        submit(ownerOp(address(account), single(address(account), 0, abi.encodeCall(IERC7579ModuleConfig.uninstallModule, (MODULE_TYPE_VALIDATOR, address(validator), "")))));
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0), abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, address(account))
        );
        vm.prank(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.NotInstalled.selector, address(account)));
        validator.enableSession(s.encode());
        vm.prank(address(account));
        account.installModule(MODULE_TYPE_VALIDATOR, address(validator), abi.encode(owner));
        uint64 epoch = validator.accountEpoch(address(account));
        submitExpectingRevert(
            useOp(s, mintCall(address(account), 1), 0),
            abi.encodeWithSelector(SessionKeyValidator.SessionEpochMismatch.selector, id(s), 0, epoch)
        );
        vm.prank(address(account));
        vm.expectRevert(abi.encodeWithSelector(SessionKeyValidator.AlreadyInstalled.selector, address(account)));
        validator.onInstall(abi.encode(owner));
    }

    // ------------------------------------------------------------------ accounting

    function test_counters_stayWhenExecutionReverts() public {
        Session memory s = oneShot(address(rec), Recorder.fails.selector);
        s.permissions[0].maxUses = 2;
        submit(enableOp(s, single(address(rec), 0, abi.encodeCall(Recorder.fails, ())), 0));
        assertEq(validator.permissionUses(address(account), id(s), 0), 1, "the use is spent");
        assertEq(rec.calls(), 0, "the call reverted");
    }

    function test_parallelSessions_onTheirOwnLanes_inOneBundle() public {
        Session memory a = mintSession();
        Session memory b = mintSession();
        b.salt = 9;
        PackedUserOperation[] memory ops = new PackedUserOperation[](2);
        ops[0] = sessionOp(address(account), 1, mintCall(address(account), 1), enablePrefix(a, 0, hex"00", grant(a, address(account))), SESSION_KEY);
        ops[1] = sessionOp(address(account), 2, mintCall(address(account), 2), enablePrefix(b, 0, hex"00", grant(b, address(account))), SESSION_KEY);
        vm.prank(bundler, bundler);
        entryPoint.handleOps(ops, bundler);
        assertEq(nft.balanceOf(address(account)), 3, "both executed");
        (SessionKeyValidator.SessionState stateA,,) = validator.sessionState(address(account), a.encode());
        (SessionKeyValidator.SessionState stateB,,) = validator.sessionState(address(account), b.encode());
        assertEq(uint256(stateA), uint256(SessionKeyValidator.SessionState.Enabled), "a enabled");
        assertEq(uint256(stateB), uint256(SessionKeyValidator.SessionState.Enabled), "b enabled");
    }

    function test_ownerOperations_andOwnerSignatures_keepWorking() public {
        submit(ownerOp(address(account), mintCall(address(0xCAFE), 2)));
        assertEq(nft.balanceOf(address(0xCAFE)), 2, "owner may do anything");
        bytes32 h = keccak256("message");
        assertEq(account.isValidSignature(h, sign65(OWNER_KEY, h)), bytes4(0x1626ba7e), "ERC-1271 owner");
        assertEq(account.isValidSignature(h, sign65(OTHER_KEY, h)), bytes4(0xffffffff), "ERC-1271 other");
        PackedUserOperation memory op = newOp(address(account), 0, mintCall(address(account), 1));
        op.signature = sign65(OTHER_KEY, signedHash(op));
        submitExpectingFailedOp(op, "AA24 signature error");
    }

    function test_sessionKeys_neverSignErc1271() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 1), 0));
        bytes32 h = keccak256("permit");
        bytes memory viaModule = abi.encodePacked(address(validator), sign65(SESSION_KEY, h));
        assertEq(account.isValidSignature(h, viaModule), bytes4(0xffffffff), "refused through the account");
        assertEq(validator.isValidSignatureWithSender(address(this), h, sign65(SESSION_KEY, h)), bytes4(0xffffffff), "refused");
    }
}
