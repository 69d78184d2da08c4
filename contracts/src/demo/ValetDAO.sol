// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ValetDAO
/// @notice A deliberately small DAO for the demo: anyone proposes, every account votes once per
///         proposal (0 = against, 1 = for, 2 = abstain) until the proposal's deadline.
contract ValetDAO {
    /// @notice A proposal and its tally.
    struct Proposal {
        string description;
        uint48 deadline;
        uint128 against;
        uint128 forVotes;
        uint128 abstain;
    }

    /// @notice Proposal ids run from 1 to `proposalCount`.
    uint256 public proposalCount;
    mapping(uint256 proposalId => Proposal) private _proposals;
    /// @notice Whether `voter` has voted on `proposalId`.
    mapping(uint256 proposalId => mapping(address voter => bool)) public hasVoted;

    /// @notice No proposal has this id.
    error UnknownProposal(uint256 proposalId);
    /// @notice The proposal's deadline has passed.
    error VotingClosed(uint256 proposalId, uint48 deadline);
    /// @notice `voter` already voted on this proposal.
    error AlreadyVoted(uint256 proposalId, address voter);
    /// @notice `support` is not 0, 1 or 2.
    error InvalidSupport(uint8 support);
    /// @notice The deadline is not in the future.
    error DeadlineInPast(uint48 deadline);

    /// @notice Emitted when a proposal is created.
    event ProposalCreated(uint256 indexed proposalId, address indexed proposer, uint48 deadline, string description);
    /// @notice Emitted for every vote.
    event VoteCast(uint256 indexed proposalId, address indexed voter, uint8 support);

    /// @notice Creates a proposal open for votes until `deadline` (inclusive).
    function propose(string calldata description, uint48 deadline) external returns (uint256 proposalId) {
        if (deadline <= block.timestamp) revert DeadlineInPast(deadline);
        proposalId = ++proposalCount;
        Proposal storage p = _proposals[proposalId];
        p.description = description;
        p.deadline = deadline;
        emit ProposalCreated(proposalId, msg.sender, deadline, description);
    }

    /// @notice Casts the caller's vote on `proposalId`: 0 = against, 1 = for, 2 = abstain.
    function castVote(uint256 proposalId, uint8 support) external {
        Proposal storage p = _proposals[proposalId];
        if (p.deadline == 0) revert UnknownProposal(proposalId);
        if (block.timestamp > p.deadline) revert VotingClosed(proposalId, p.deadline);
        if (hasVoted[proposalId][msg.sender]) revert AlreadyVoted(proposalId, msg.sender);
        if (support > 2) revert InvalidSupport(support);
        hasVoted[proposalId][msg.sender] = true;
        if (support == 0) p.against += 1;
        else if (support == 1) p.forVotes += 1;
        else p.abstain += 1;
        emit VoteCast(proposalId, msg.sender, support);
    }

    /// @notice A proposal with its tally.
    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        if (_proposals[proposalId].deadline == 0) revert UnknownProposal(proposalId);
        return _proposals[proposalId];
    }
}
