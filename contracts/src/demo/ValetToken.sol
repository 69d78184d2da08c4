// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ValetToken
/// @notice The demo ERC-20 (18 decimals) with a faucet anyone may call, used for recurring payments.
contract ValetToken is ERC20 {
    /// @notice The most one `faucet` call hands out: 1,000 tokens.
    uint256 public constant FAUCET_MAX = 1_000 ether;

    /// @notice `amount` is above {FAUCET_MAX}.
    error FaucetLimitExceeded(uint256 amount, uint256 max);

    constructor() ERC20("Valet Demo Token", "VLT") {}

    /// @notice Mints `amount` (at most {FAUCET_MAX}) to `to`.
    function faucet(address to, uint256 amount) external {
        if (amount > FAUCET_MAX) revert FaucetLimitExceeded(amount, FAUCET_MAX);
        _mint(to, amount);
    }
}
