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
});
