// What an operation's own events say it did: the NFTs a mint minted, named from its Transfer
// events rather than guessed from a before/after diff of the account (which another tab's or
// app's mint at the same moment would blur).

import { pad, toEventSelector, type Address } from 'viem';
import type { ExecutionEvent } from './api';

/// topics[0] of ERC-721's (and ERC-20's) `Transfer(address indexed from, address indexed to, …)`.
export const TRANSFER_TOPIC = toEventSelector('Transfer(address,address,uint256)');

/// The ids `events` minted to `to` in collection `nft` (its `Transfer(0, to, tokenId)` events,
/// tokenId indexed as ERC-721 has it), in order, as decimal strings.
export function mintedIds(events: ExecutionEvent[], nft: Address, to: Address): string[] {
  const zero = pad('0x0', { size: 32 });
  const recipient = pad(to.toLowerCase() as Address, { size: 32 });
  return events
    .filter(
      (e) =>
        e.address.toLowerCase() === nft.toLowerCase() &&
        e.topics.length === 4 &&
        e.topics[0]?.toLowerCase() === TRANSFER_TOPIC &&
        e.topics[1]?.toLowerCase() === zero &&
        e.topics[2]?.toLowerCase() === recipient,
    )
    .map((e) => BigInt(e.topics[3] as string).toString());
}
