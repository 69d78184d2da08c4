// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ValetTestBase} from "./utils/ValetTestBase.sol";
import {Session} from "./utils/Sessions.sol";

contract SmokeTest is ValetTestBase {
    function test_enableAndMint_succeeds() public {
        Session memory s = mintSession();
        submit(enableOp(s, mintCall(address(account), 2), 0));
        assertEq(nft.balanceOf(address(account)), 2, "minted");
        submit(useOp(s, mintCall(address(account), 5), 0));
        assertEq(nft.balanceOf(address(account)), 7, "minted");
        submit(ownerOp(address(account), mintCall(address(account), 1)));
        assertEq(nft.balanceOf(address(account)), 8, "minted");
    }
}
