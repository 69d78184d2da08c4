import { describe, expect, it } from 'vitest';
import { Api, ApiError } from './api';

/** A fetch that answers every request with `status` and `body`, and records the requests. */
function answering(status: number, body: unknown) {
  const requests: { url: string; init: RequestInit | undefined }[] = [];
  const fetcher = (async (url: string, init?: RequestInit) => {
    requests.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { fetcher, requests };
}

describe('api', () => {
  it("a refusal keeps the service's code, message and the rest of its answer", async () => {
    const body = {
      error: 'sponsorship_budget_exceeded',
      message: 'sponsorship budget exceeded: …; nothing was sent',
      budget_wei: '1000000000',
      left_wei: '1000000000',
      max_cost_wei: '80055346108482',
      execution_id: 'ex_1',
    };
    const { fetcher, requests } = answering(402, body);
    const error = await new Api('key', fetcher).execute('0x01', [{ to: 'ValetNFT' }], 'idem').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 402, code: 'sponsorship_budget_exceeded', message: body.message, fields: body });
    expect(requests[0]?.init?.headers).toMatchObject({ authorization: 'Bearer key', 'idempotency-key': 'idem' });
  });

  it("reads the app's sponsorship with its key", async () => {
    const { fetcher, requests } = answering(200, { sponsored: true, left_wei: '1' });
    expect(await new Api('key', fetcher).sponsorship()).toMatchObject({ sponsored: true, left_wei: '1' });
    expect(requests[0]?.url).toBe('/v1/sponsorship');
  });

  it('asks for the EIP-7702 account with kind=eip7702, the smart one as before', async () => {
    const { fetcher, requests } = answering(200, { address: '0x01' });
    const api = new Api('key', fetcher);
    await api.account('0x1111111111111111111111111111111111111111');
    await api.account('0x1111111111111111111111111111111111111111', 'eip7702');
    expect(requests.map((r) => r.url)).toEqual([
      '/v1/accounts/0x1111111111111111111111111111111111111111',
      '/v1/accounts/0x1111111111111111111111111111111111111111?kind=eip7702',
    ]);
  });

  it('proposes with account_kind only for eip7702, and grants with the delegation signature when there is one', async () => {
    const { fetcher, requests } = answering(200, {});
    const api = new Api('key', fetcher);
    const owner = '0x1111111111111111111111111111111111111111';
    await api.propose(owner, { a: 1 });
    await api.propose(owner, { a: 1 }, {}, 'eip7702');
    await api.grant('0x01', '0xaa');
    await api.grant('0x01', '0xaa', '0xbb');
    const bodies = requests.map((r) => JSON.parse(String(r.init?.body)));
    expect(bodies).toEqual([
      { owner, spec: { a: 1 }, names: {} },
      { owner, spec: { a: 1 }, names: {}, account_kind: 'eip7702' },
      { signature: '0xaa' },
      { signature: '0xaa', delegation_signature: '0xbb' },
    ]);
  });
});
