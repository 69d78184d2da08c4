import { describe, expect, it } from 'vitest';
import { hashTypedData, recoverTypedDataAddress } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { TypedData } from './api';
import proposal from './fixtures/payment-proposal.json';
import { developmentWallet, forViem } from './wallet';

const typedData = proposal.typed_data as unknown as TypedData;

describe('typed data from the service', () => {
  it('hashes to the digest the service checks the grant against', () => {
    expect(hashTypedData(forViem(typedData) as Parameters<typeof hashTypedData>[0])).toBe(proposal.digest);
  });

  it('hashes differently when any field changes (the test above is not vacuous)', () => {
    const changed = structuredClone(typedData);
    (changed.message.session as { maxUses: string }).maxUses = '1';
    expect(hashTypedData(forViem(changed) as Parameters<typeof hashTypedData>[0])).not.toBe(proposal.digest);
  });

  it('is signed by the development wallet so that the signature recovers to its address', async () => {
    const key = generatePrivateKey();
    const wallet = developmentWallet(key, 'test');
    expect(wallet.address).toBe(privateKeyToAccount(key).address);
    const signature = await wallet.signTypedData(typedData);
    const signer = await recoverTypedDataAddress({
      ...(forViem(typedData) as Parameters<typeof hashTypedData>[0]),
      signature,
    });
    expect(signer).toBe(wallet.address);
  });
});
