// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Test} from "./utils/Test.sol";
import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session, Sessions, Permission} from "./utils/Sessions.sol";

/// @notice Drives three live sessions with random operations through the EntryPoint: mints
///         under a use count, token payments under a daily allowance, native payments under a
///         total; time moves forward at random. Refused operations are expected and ignored.
contract SessionHandler is ValetTestBase {
    using Sessions for Session;

    address internal constant PAYEE = address(0xFEE);
    uint128 internal constant DAILY = 10 ether;
    uint128 internal constant NATIVE_TOTAL = 1 ether;

    bytes internal mint;
    bytes internal pay;
    bytes internal tip;
    bytes32 public mintId;
    bytes32 public payId;
    bytes32 public tipId;

    /// @notice Tokens the payee received, by period index of the allowance.
    mapping(uint256 period => uint256) public paidIn;
    uint256 public maxPeriodSeen;
    uint256 public accepted;

    constructor() {
        setUp();
        Session memory m = mintSession();
        Session memory p = Sessions.session(sessionSigner, T0, T0 + 30 days);
        p = p.withPermission(
            Sessions.withRule(Sessions.permission(address(token), IERC20.transfer.selector), Sessions.rule(0, Sessions.EQ, uint256(uint160(PAYEE))))
        );
        p = p.withLimit(1, address(token), DAILY, 1 days);
        Session memory t = Sessions.session(sessionSigner, T0, T0 + 30 days);
        Permission memory toPayee = Sessions.permission(PAYEE, bytes4(0));
        toPayee.valueLimit = 0.3 ether;
        t = t.withPermission(toPayee);
        t = t.withLimit(0, address(0), NATIVE_TOTAL, 0);
        (mint, pay, tip) = (m.encode(), p.encode(), t.encode());
        (mintId, payId, tipId) = (keccak256(mint), keccak256(pay), keccak256(tip));
        enableByOwner(m);
        enableByOwner(p);
        enableByOwner(t);
    }

    /// @dev The fixture is built once, in the constructor; a fuzzed call to `setUp` is refused.
    function setUp() public override {
        require(address(validator) == address(0), "SessionHandler: set up once");
        super.setUp();
    }

    function _try(PackedUserOperation memory op) internal returns (bool ok) {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        vm.prank(bundler, bundler);
        try entryPoint.handleOps(ops, bundler) {
            ok = true;
            accepted += 1;
        } catch {}
    }

    function mintSome(uint256 quantity, bool toSelf) external {
        quantity = bound(quantity, 0, 7);
        address to = toSelf ? address(account) : address(0xBAD);
        _try(sessionOp(address(account), 1, mintCall(to, quantity), usePrefix(mint, 0, hex"00"), SESSION_KEY));
    }

    function payTokens(uint256 amount, uint256 claimedLag) external {
        amount = bound(amount, 0, 12 ether);
        uint48 claimed = uint48(block.timestamp - bound(claimedLag, 0, 2 days));
        uint256 before = token.balanceOf(PAYEE);
        bytes memory call = single(address(token), 0, abi.encodeCall(IERC20.transfer, (PAYEE, amount)));
        if (_try(sessionOp(address(account), 2, call, usePrefix(pay, claimed, hex"00"), SESSION_KEY))) {
            uint256 period = (block.timestamp - T0) / 1 days;
            paidIn[period] += token.balanceOf(PAYEE) - before;
            if (period > maxPeriodSeen) maxPeriodSeen = period;
        }
    }

    function tipNative(uint256 amount) external {
        amount = bound(amount, 0, 0.5 ether);
        _try(sessionOp(address(account), 3, single(PAYEE, amount, ""), usePrefix(tip, 0, hex"00"), SESSION_KEY));
    }

    function wait(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 0, 1 days));
    }

    function nftBalance() external view returns (uint256) {
        return nft.balanceOf(address(account));
    }

    function validatorAddress() external view returns (address) {
        return address(validator);
    }

    function accountAddress() external view returns (address) {
        return address(account);
    }
}

interface IValidatorViews {
    function permissionUses(address account, bytes32 id, uint256 permissionIndex) external view returns (uint256);
    function limitUsage(address account, bytes32 id, uint256 limitIndex) external view returns (uint256, uint256);
}

/// @notice Invariants: no sequence of operations ever exceeds a use count or a limit.
contract InvariantsTest is Test {
    SessionHandler internal handler;

    function setUp() public {
        handler = new SessionHandler();
        targetContract(address(handler));
    }

    /// @dev The invariants are not vacuous: operations did go through in every run.
    function afterInvariant() public view {
        assertTrue(handler.accepted() > 0, "some operations were accepted");
    }

    function invariant_mintUsesNeverExceedTheirCount() public view {
        IValidatorViews v = IValidatorViews(handler.validatorAddress());
        assertLe(v.permissionUses(handler.accountAddress(), handler.mintId(), 0), 10, "permission uses");
        assertLe(handler.nftBalance(), 10 * 5, "at most 10 mints of at most 5");
    }

    function invariant_noPeriodPaysMoreThanTheAllowance() public view {
        for (uint256 p = 0; p <= handler.maxPeriodSeen(); ++p) {
            assertLe(handler.paidIn(p), 10 ether, "paid in one period");
        }
        (uint256 spent,) = IValidatorViews(handler.validatorAddress()).limitUsage(handler.accountAddress(), handler.payId(), 0);
        assertLe(spent, 10 ether, "recorded spending");
    }

    function invariant_nativeNeverExceedsItsTotal() public view {
        assertLe(address(0xFEE).balance, 1 ether, "native paid");
        (uint256 spent,) = IValidatorViews(handler.validatorAddress()).limitUsage(handler.accountAddress(), handler.tipId(), 0);
        assertEq(spent, address(0xFEE).balance, "recorded equals paid");
    }
}
