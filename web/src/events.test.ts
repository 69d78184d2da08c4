import { describe, expect, it } from 'vitest';
import type { ExecutionEvent } from './api';
import { TRANSFER_TOPIC, mintedIds } from './events';

const nft = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
const account = '0x9f3A1d0b2c4E5F60718293a4B5c6D7e8F9011223';
const other = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const word = (n: bigint | string) =>
  `0x${(typeof n === 'bigint' ? n.toString(16) : n.slice(2).toLowerCase()).padStart(64, '0')}` as `0x${string}`;

function transfer(from: string | bigint, to: string, id: bigint, address: string = nft): ExecutionEvent {
  return { address: address as `0x${string}`, topics: [TRANSFER_TOPIC, word(from), word(to), word(id)], data: '0x' };
}

describe('mintedIds', () => {
  it('is the Transfer topic', () => {
    expect(TRANSFER_TOPIC).toBe('0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef');
  });

  it('names the ids minted to the account by the collection, in order', () => {
    const events = [transfer(0n, account, 9n), transfer(0n, account, 8n)];
    expect(mintedIds(events, nft, account)).toEqual(['9', '8']);
  });

  it('leaves out transfers between holders, to others, of other contracts, and other events', () => {
    const events: ExecutionEvent[] = [
      transfer(other, account, 1n),
      transfer(0n, other, 2n),
      transfer(0n, account, 3n, other),
      // An ERC-20 Transfer: the amount in data, three topics.
      { address: nft, topics: [TRANSFER_TOPIC, word(0n), word(account)], data: word(4n) },
      { address: nft, topics: [word(5n), word(0n), word(account), word(6n)], data: '0x' },
      transfer(0n, account.toLowerCase(), 7n, nft.toLowerCase()),
    ];
    expect(mintedIds(events, nft, account)).toEqual(['7']);
  });

  it('names nothing for no events', () => {
    expect(mintedIds([], nft, account)).toEqual([]);
  });
});
