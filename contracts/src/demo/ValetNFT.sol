// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title ValetNFT
/// @notice The demo collection: anyone may mint, a few at a time. Sessions in the demo are allowed
///         `mint(to = the account, quantity <= 5)`.
contract ValetNFT is ERC721 {
    /// @notice The most tokens one `mint` call may create.
    uint256 public constant MAX_PER_MINT = 20;

    /// @notice Number of tokens minted so far; token ids run from 1 to `totalMinted`.
    uint256 public totalMinted;

    /// @notice `quantity` is 0 or above {MAX_PER_MINT}.
    error InvalidQuantity(uint256 quantity);

    /// @notice Emitted once per `mint` call, after its tokens' Transfer events.
    event Minted(address indexed to, uint256 firstTokenId, uint256 quantity);

    constructor() ERC721("Valet Demo NFT", "VALET") {}

    /// @notice Mints `quantity` new tokens to `to`, with consecutive ids.
    /// @dev Uses `_safeMint`, so a contract recipient must implement `onERC721Received`.
    function mint(address to, uint256 quantity) external {
        if (quantity == 0 || quantity > MAX_PER_MINT) revert InvalidQuantity(quantity);
        uint256 first = totalMinted + 1;
        totalMinted += quantity;
        for (uint256 i = 0; i < quantity; ++i) {
            _safeMint(to, first + i);
        }
        emit Minted(to, first, quantity);
    }
}
