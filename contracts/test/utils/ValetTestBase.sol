// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {PackedUserOperation} from "@openzeppelin/contracts/interfaces/IERC4337.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IERC7579Execution} from "@openzeppelin/contracts/interfaces/draft-IERC7579.sol";
import {Test} from "./Test.sol";
import {Session, Sessions} from "./Sessions.sol";
import {SessionKeyValidator} from "../../src/SessionKeyValidator.sol";
import {ValetAccount} from "../../src/ValetAccount.sol";
import {ValetAccountFactory} from "../../src/ValetAccountFactory.sol";
import {ValetNFT} from "../../src/demo/ValetNFT.sol";
import {ValetToken} from "../../src/demo/ValetToken.sol";
import {ValetDAO} from "../../src/demo/ValetDAO.sol";

/// @notice EntryPoint v0.7, as much of it as the tests call.
interface IEntryPointV07 {
    struct ReturnInfo {
        uint256 preOpGas;
        uint256 prefund;
        uint256 accountValidationData;
        uint256 paymasterValidationData;
        bytes paymasterContext;
    }

    error FailedOp(uint256 opIndex, string reason);
    error FailedOpWithRevert(uint256 opIndex, string reason, bytes inner);

    event UserOperationEvent(
        bytes32 indexed userOpHash,
        address indexed sender,
        address indexed paymaster,
        uint256 nonce,
        bool success,
        uint256 actualGasCost,
        uint256 actualGasUsed
    );
    event UserOperationRevertReason(
        bytes32 indexed userOpHash, address indexed sender, uint256 nonce, bytes revertReason
    );

    function handleOps(PackedUserOperation[] calldata ops, address payable beneficiary) external;
    function getUserOpHash(PackedUserOperation calldata userOp) external view returns (bytes32);
    function getNonce(address sender, uint192 key) external view returns (uint256);
    function depositTo(address account) external payable;
    function balanceOf(address account) external view returns (uint256);
    function getSenderAddress(bytes calldata initCode) external;
}

/// @notice Deploys the real EntryPoint v0.7 (from its npm artifact, through the deterministic
///         deployer, at its canonical address), the Valet contracts and the demo contracts, and
///         builds, signs and submits UserOperations through `handleOps`.
abstract contract ValetTestBase is Test {
    using Sessions for Session;

    address internal constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;
    bytes internal constant CREATE2_DEPLOYER_CODE =
        hex"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";
    bytes32 internal constant ENTRYPOINT_SALT = 0x90d8084deab30c2a37c45e8d47f49f2f7965183cb6990a98943ef94940681de3;
    IEntryPointV07 internal constant entryPoint = IEntryPointV07(0x0000000071727De22E5E9d8BAf0edAc6f37da032);

    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant SESSION_KEY = 0x5E551;
    uint256 internal constant OTHER_KEY = 0xBAD;
    uint48 internal constant T0 = 1_800_000_000;

    address internal owner;
    address internal sessionSigner;
    address payable internal bundler;

    SessionKeyValidator internal validator;
    ValetAccountFactory internal factory;
    ValetAccount internal account;
    ValetNFT internal nft;
    ValetToken internal token;
    ValetDAO internal dao;

    function setUp() public virtual {
        vm.warp(T0);
        deployEntryPoint();
        owner = vm.addr(OWNER_KEY);
        sessionSigner = vm.addr(SESSION_KEY);
        bundler = payable(vm.addr(0xB0B));
        validator = new SessionKeyValidator();
        factory = new ValetAccountFactory(address(validator));
        nft = new ValetNFT();
        token = new ValetToken();
        dao = new ValetDAO();
        account = factory.createAccount(owner, 0);
        vm.deal(address(account), 100 ether);
        token.faucet(address(account), 1_000 ether);
        vm.label(address(account), "account");
        vm.label(address(validator), "validator");
    }

    function deployEntryPoint() internal {
        if (address(entryPoint).code.length != 0) return;
        vm.etch(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
        string memory json = vm.readFile("../tools/node_modules/@account-abstraction/contracts/artifacts/EntryPoint.json");
        bytes memory initCode = vm.parseJsonBytes(json, ".bytecode");
        (bool ok, bytes memory ret) = CREATE2_DEPLOYER.call(abi.encodePacked(ENTRYPOINT_SALT, initCode));
        require(ok && address(bytes20(ret)) == address(entryPoint), "EntryPoint v0.7 not at its canonical address");
    }

    // ------------------------------------------------------------ calldata

    function single(address target, uint256 value, bytes memory data) internal pure returns (bytes memory) {
        return abi.encodeCall(IERC7579Execution.execute, (bytes32(0), abi.encodePacked(target, value, data)));
    }

    struct Call {
        address target;
        uint256 value;
        bytes callData;
    }

    function batch(Call[] memory calls) internal pure returns (bytes memory) {
        return abi.encodeCall(IERC7579Execution.execute, (bytes32(bytes1(0x01)), abi.encode(calls)));
    }

    function mintCall(address to, uint256 quantity) internal view returns (bytes memory) {
        return single(address(nft), 0, abi.encodeCall(ValetNFT.mint, (to, quantity)));
    }

    // ------------------------------------------------------------ operations

    function sessionNonceKey(uint32 lane) internal view returns (uint192) {
        return (uint192(uint160(address(validator))) << 32) | lane;
    }

    function newOp(address sender, uint192 key, bytes memory callData) internal view returns (PackedUserOperation memory op) {
        op.sender = sender;
        op.nonce = entryPoint.getNonce(sender, key);
        op.callData = callData;
        op.accountGasLimits = bytes32((uint256(1_000_000) << 128) | 1_000_000);
        op.preVerificationGas = 60_000;
        op.gasFees = bytes32((uint256(1 gwei) << 128) | 2 gwei);
    }

    function signedHash(PackedUserOperation memory op) internal view returns (bytes32) {
        return MessageHashUtils.toEthSignedMessageHash(entryPoint.getUserOpHash(op));
    }

    function sign65(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function ownerOp(address sender, bytes memory callData) internal view returns (PackedUserOperation memory op) {
        op = newOp(sender, 0, callData);
        op.signature = sign65(OWNER_KEY, signedHash(op));
    }

    function grant(Session memory s, address acct) internal view returns (bytes memory) {
        return sign65(OWNER_KEY, s.grantDigest(acct, address(validator), block.chainid));
    }

    /// @dev The use-mode signature prefix (everything before the session key's 65 bytes).
    function usePrefix(Session memory s, uint48 claimedTime, bytes memory indices) internal pure returns (bytes memory) {
        return usePrefix(s.encode(), claimedTime, indices);
    }

    function usePrefix(bytes memory packed, uint48 claimedTime, bytes memory indices) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(0), uint16(packed.length), packed, claimedTime, uint8(indices.length), indices);
    }

    function enablePrefix(Session memory s, uint48 claimedTime, bytes memory indices, bytes memory grantSig)
        internal
        pure
        returns (bytes memory)
    {
        bytes memory packed = s.encode();
        return abi.encodePacked(
            uint8(1),
            uint16(packed.length),
            packed,
            claimedTime,
            uint8(indices.length),
            indices,
            uint16(grantSig.length),
            grantSig
        );
    }

    function sessionOp(address sender, uint32 lane, bytes memory callData, bytes memory prefix, uint256 key)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = newOp(sender, sessionNonceKey(lane), callData);
        op.signature = abi.encodePacked(prefix, sign65(key, keyDigest(entryPoint.getUserOpHash(op), prefix)));
    }

    /// @dev What the session key signs for a signature starting with `prefix`:
    ///      keccak256(hash ‖ sessionId ‖ claimedTime ‖ call count ‖ indices).
    function keyDigest(bytes32 hash, bytes memory prefix) internal pure returns (bytes32) {
        uint256 len = (uint256(uint8(prefix[1])) << 8) | uint8(prefix[2]);
        bytes memory session = new bytes(len);
        for (uint256 i = 0; i < len; ++i) {
            session[i] = prefix[3 + i];
        }
        uint256 calls = uint8(prefix[3 + len + 6]);
        bytes memory tail = new bytes(7 + calls);
        for (uint256 i = 0; i < tail.length; ++i) {
            tail[i] = prefix[3 + len + i];
        }
        return keccak256(abi.encodePacked(hash, keccak256(session), tail));
    }

    /// @dev A use operation of `s` on `account` whose single call uses permission `index`.
    function useOp(Session memory s, bytes memory callData, uint8 index) internal view returns (PackedUserOperation memory) {
        return sessionOp(address(account), 1, callData, usePrefix(s, 0, abi.encodePacked(index)), SESSION_KEY);
    }

    function enableOp(Session memory s, bytes memory callData, uint8 index) internal view returns (PackedUserOperation memory) {
        return sessionOp(
            address(account), 1, callData, enablePrefix(s, 0, abi.encodePacked(index), grant(s, address(account))), SESSION_KEY
        );
    }

    function submit(PackedUserOperation memory op) internal {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        vm.prank(bundler, bundler);
        entryPoint.handleOps(ops, bundler);
    }

    /// @dev Expects `handleOps` to refuse the operation in validation with the validator's `inner` error.
    function submitExpectingRevert(PackedUserOperation memory op, bytes memory inner) internal {
        vm.expectRevert(abi.encodeWithSelector(IEntryPointV07.FailedOpWithRevert.selector, 0, "AA23 reverted", inner));
        submit(op);
    }

    function submitExpectingFailedOp(PackedUserOperation memory op, string memory reason) internal {
        vm.expectRevert(abi.encodeWithSelector(IEntryPointV07.FailedOp.selector, 0, reason));
        submit(op);
    }

    // ------------------------------------------------------------ sessions

    /// @dev The demo's session: mint(to == account, quantity <= 5) on the NFT, 10 uses, 1 hour.
    function mintSession() internal view returns (Session memory s) {
        s = Sessions.session(sessionSigner, T0, T0 + 3600);
        s = s.withPermission(
            Sessions.withRule(
                Sessions.withRule(
                    _withMaxUses(Sessions.permission(address(nft), ValetNFT.mint.selector), 10),
                    Sessions.self(0)
                ),
                Sessions.rule(1, Sessions.LTE, 5)
            )
        );
    }

    function _withMaxUses(
        // forgefmt: disable-next-line
        Permission_ memory p, uint16 maxUses
    ) internal pure returns (Permission_ memory) {
        p.maxUses = maxUses;
        return p;
    }

    function id(Session memory s) internal pure returns (bytes32) {
        return keccak256(s.encode());
    }

    /// @dev The account enables `s` itself, in an owner-signed operation.
    function enableByOwner(Session memory s) internal {
        submit(ownerOp(address(account), single(address(validator), 0, abi.encodeCall(validator.enableSession, (s.encode())))));
    }

    /// @dev A session with one permission, valid for an hour from T0.
    function oneShot(address target, bytes4 selector) internal view returns (Session memory s) {
        s = Sessions.session(sessionSigner, T0, T0 + 3600);
        s = s.withPermission(Sessions.permission(target, selector));
    }
}

import {Permission as Permission_} from "./Sessions.sol";
