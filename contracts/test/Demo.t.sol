// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "./utils/Test.sol";
import {ValetNFT} from "../src/demo/ValetNFT.sol";
import {ValetToken} from "../src/demo/ValetToken.sol";
import {ValetDAO} from "../src/demo/ValetDAO.sol";

/// @notice The demo contracts on their own.
contract DemoContractsTest is Test {
    ValetNFT internal nft;
    ValetToken internal token;
    ValetDAO internal dao;

    function setUp() public {
        vm.warp(1_800_000_000);
        nft = new ValetNFT();
        token = new ValetToken();
        dao = new ValetDAO();
    }

    function test_nft_mintsConsecutiveIds() public {
        nft.mint(address(0xA), 3);
        nft.mint(address(0xB), 2);
        assertEq(nft.balanceOf(address(0xA)), 3, "balance");
        assertEq(nft.ownerOf(4), address(0xB), "ids continue");
        assertEq(nft.totalMinted(), 5, "total");
    }

    function test_nft_refusesZeroOrTooMany() public {
        vm.expectRevert(abi.encodeWithSelector(ValetNFT.InvalidQuantity.selector, 0));
        nft.mint(address(0xA), 0);
        vm.expectRevert(abi.encodeWithSelector(ValetNFT.InvalidQuantity.selector, 21));
        nft.mint(address(0xA), 21);
    }

    function test_token_faucetCapped() public {
        token.faucet(address(0xA), 1_000 ether);
        assertEq(token.balanceOf(address(0xA)), 1_000 ether, "faucet");
        vm.expectRevert(abi.encodeWithSelector(ValetToken.FaucetLimitExceeded.selector, 1_000 ether + 1, 1_000 ether));
        token.faucet(address(0xA), 1_000 ether + 1);
    }

    function test_dao_votesOncePerProposalUntilTheDeadline() public {
        uint256 id = dao.propose("Fund the valet", uint48(block.timestamp + 1 days));
        vm.prank(address(0xA));
        dao.castVote(id, 1);
        vm.prank(address(0xB));
        dao.castVote(id, 0);
        ValetDAO.Proposal memory p = dao.getProposal(id);
        assertEq(p.forVotes, 1, "for");
        assertEq(p.against, 1, "against");
        assertTrue(dao.hasVoted(id, address(0xA)), "recorded");

        vm.prank(address(0xA));
        vm.expectRevert(abi.encodeWithSelector(ValetDAO.AlreadyVoted.selector, id, address(0xA)));
        dao.castVote(id, 2);
        vm.prank(address(0xC));
        vm.expectRevert(abi.encodeWithSelector(ValetDAO.InvalidSupport.selector, 3));
        dao.castVote(id, 3);
        vm.expectRevert(abi.encodeWithSelector(ValetDAO.UnknownProposal.selector, 99));
        dao.castVote(99, 1);

        vm.warp(block.timestamp + 1 days + 1);
        vm.prank(address(0xC));
        vm.expectRevert(abi.encodeWithSelector(ValetDAO.VotingClosed.selector, id, p.deadline));
        dao.castVote(id, 1);
    }

    function test_dao_refusesPastDeadlines() public {
        vm.expectRevert(abi.encodeWithSelector(ValetDAO.DeadlineInPast.selector, uint48(block.timestamp)));
        dao.propose("too late", uint48(block.timestamp));
    }
}
