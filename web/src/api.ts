// The service's HTTP API, as the dApp uses it. Every failure becomes an `ApiError` carrying the
// service's own message, which names the problem (a refusal's reason, a bad value, …).

import type { Address, Hex } from 'viem';
import type { AccountKind } from './eip7702';

/// What `GET /config.json` says (served by `valet up` on the devnet).
export interface Config {
  network: string;
  chain_id: number;
  api_key: string;
  contracts: Record<string, Address>;
  validator: Address;
  factory: Address;
  demo_payee?: Address;
  dao_proposals?: { id: number; title: string }[];
  faucet?: boolean;
  /// The paymaster that sponsors this app's operations, when the app has a sponsorship budget:
  /// the service then pays the network fees of every operation it sends for the app.
  paymaster?: Address;
  dev_wallet?: { address: Address; private_key: Hex; label: string };
}

export interface TokenHolding {
  address: Address;
  symbol: string;
  balance: string;
  kind?: 'erc20' | 'erc721';
  decimals?: number;
  token_ids?: string[];
}

export interface AccountInfo {
  address: Address;
  owner: Address;
  /// `smart` or `eip7702` (absent from older services: smart). An `eip7702` account's address is
  /// the owner's own.
  kind?: AccountKind;
  salt?: string;
  /// Smart: the clone is deployed. EIP-7702: the EOA delegates to Valet and has activated it.
  deployed: boolean;
  /// EIP-7702: the EOA's code delegates to Valet's ValetAccount7702.
  delegated?: boolean;
  balance_wei: string;
  tokens: Record<string, TokenHolding>;
}

/// EIP-712 typed data as `eth_signTypedData_v4` takes it.
export interface TypedData {
  types: Record<string, { name: string; type: string }[]>;
  primaryType: string;
  domain: Record<string, unknown>;
  message: Record<string, unknown>;
}

export interface Proposal {
  session_id: Hex;
  status: string;
  /// `smart` or `eip7702` (absent from older services: smart).
  account_kind?: AccountKind;
  /// EIP-7702, when the EOA does not delegate to Valet yet: the authorization the owner signs
  /// (raw, `signing_hash`) besides the grant. Checked with `parseDelegation` before use.
  delegation?: unknown;
  account: Address;
  account_deployed: boolean;
  session_key: Address;
  valid_after: number;
  valid_until: number;
  summary: string[];
  digest: Hex;
  typed_data: TypedData;
  /// What the service thinks the owner should know before approving (a function the contract
  /// may not have, a very long validity, …); absent from older services.
  warnings?: string[];
  /// Roughly what the session's operations cost in network fees now, whoever pays them (wei,
  /// decimal strings); absent from older services, null when the chain could not say.
  fee_estimate?: FeeEstimate | null;
}

export interface FeeEstimate {
  gas_price_wei: string;
  /// The first operation: it creates the account if it is not deployed and enables the session.
  first_operation_wei: string;
  later_operation_wei: string;
}

export interface PermissionStatus {
  target: Address;
  selector: Hex;
  uses: number | null;
  max_uses: number;
}

export interface LimitStatus {
  kind: 'native' | 'erc20' | 'fees';
  token: Address;
  cap: number | string;
  spent: number | string;
  left: number | string;
  period_seconds: number;
  period: number;
  current_period: number;
}

/// What a session may spend on network fees (wei), and has.
export interface FeeStatus {
  /// `per_period`: only a fee allowance per period (in `limits`, kind `fees`) bounds it.
  mode: 'sponsored' | 'budget' | 'per_period';
  budget: number | string;
  spent: number | string;
  left: number | string;
  paymasters: Address[];
}

export interface ChainStatus {
  id: Hex;
  state: 'none' | 'enabled' | 'revoked' | 'voided' | 'not_installed';
  usable: boolean;
  reason: string | null;
  now: number;
  valid_after: number;
  valid_until: number;
  uses: number;
  max_uses: number;
  permissions: PermissionStatus[];
  limits: LimitStatus[];
  fees: FeeStatus;
}

export interface SessionInfo {
  session_id: Hex;
  status: 'proposed' | 'active' | 'revoked';
  account: Address;
  owner: Address;
  session_key: Address;
  summary: string[];
  usable: boolean;
  reason: string | null;
  chain: ChainStatus;
}

export interface Execution {
  execution_id: string;
  session_id: Hex;
  status: string;
  user_op_hash: Hex | null;
  transaction_hash: Hex | null;
  gas_used: string | null;
  /// What the operation's network fee cost, in wei, and the paymaster that paid it (null: the
  /// account paid).
  fee_wei?: string | null;
  paymaster?: Address | null;
  detail: unknown;
  /// Of an included execution: the logs its own operation emitted, in order (none of other
  /// operations in the same transaction, none of the EntryPoint's). Absent when the service
  /// does not know them.
  events?: ExecutionEvent[];
}

/// One log an operation emitted: the contract, its topics (topics[0] the event's signature
/// hash) and its data.
export interface ExecutionEvent {
  address: Address;
  topics: Hex[];
  data: Hex;
}

/// The app's sponsorship of network fees today (`GET /v1/sponsorship`): amounts in wei, per UTC
/// day.
export interface Sponsorship {
  /// Whether the service pays this app's operations now; `reason` says why not.
  sponsored: boolean;
  reason: string | null;
  paymaster: Address | null;
  /// The daily budget (null: none).
  budget_wei: string | null;
  spent_today_wei: string;
  /// Held for operations not settled yet (each at its maximum cost).
  reserved_wei: string;
  left_wei: string;
  /// The UTC day, `YYYY-MM-DD`, and when the next starts (unix seconds).
  day: string;
  resets_at: number;
}

export interface AuditEvent {
  seq: number;
  account: string | null;
  session_id: string | null;
  event: string;
  detail: Record<string, unknown> | string | null;
  at: string | number;
}

export interface CallRequest {
  to: string;
  function?: string;
  args?: (string | number | boolean)[];
  value?: string;
  data?: Hex;
}

/// A failed request: the HTTP status, the service's error code and its message, and the rest of
/// its answer (fields some errors add, e.g. the amounts of a refusal for want of sponsorship).
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/// The configuration the page starts from; a clear error when the service does not serve one.
export async function loadConfig(fetcher: typeof fetch = fetch): Promise<Config> {
  let response: Response;
  try {
    response = await fetcher('/config.json', { cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the Valet service is not reachable: ${String(e)}`);
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      'no_config',
      'this service does not serve the dApp configuration: start it with `valet up` (or `make up`)',
    );
  }
  return (await response.json()) as Config;
}

/// Whether the service answers at all (`/health`): any HTTP answer counts, even "not ready";
/// only a failed connection means it is gone.
export async function reachable(fetcher: typeof fetch = fetch): Promise<boolean> {
  try {
    await fetcher('/health', { cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}

/// A client of the service's `/v1` API with the dApp's key.
export class Api {
  constructor(
    private readonly key: string,
    private readonly fetcher: typeof fetch = fetch.bind(globalThis),
  ) {}

  private async request<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}`, ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetcher(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'unreachable', `the Valet service is not reachable (${method} ${path}): ${String(e)}`);
    }
    const text = await response.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: fall through with the text as the message.
    }
    if (!response.ok) {
      const error = json as ({ error?: string; message?: string } & Record<string, unknown>) | null;
      throw new ApiError(
        response.status,
        error?.error ?? 'http_error',
        error?.message ?? `${method} ${path} answered ${response.status}: ${text.slice(0, 200)}`,
        error && typeof error === 'object' ? error : {},
      );
    }
    return json as T;
  }

  /// `owner`'s account of `kind`: its smart account (the default), or its own address as an
  /// EIP-7702 account.
  account(owner: Address, kind: AccountKind = 'smart'): Promise<AccountInfo> {
    return this.request('GET', kind === 'smart' ? `/v1/accounts/${owner}` : `/v1/accounts/${owner}?kind=${kind}`);
  }

  /// The devnet faucet: ETH for fees, and demo tokens.
  /** Demo tokens, and ETH for gas unless `eth` is false (a sponsor pays the fees). */
  fund(address: Address, eth = true): Promise<{ funded: boolean; transactions: Hex[]; balance_wei: string }> {
    return this.request('POST', '/v1/devnet/fund', { address, eth });
  }

  /// A session for `owner`'s account of `kind` (`account_kind` is sent only for `eip7702`, so a
  /// smart proposal is what it always was).
  propose(owner: Address, spec: unknown, names: Record<string, string> = {}, kind: AccountKind = 'smart'): Promise<Proposal> {
    return this.request('POST', '/v1/sessions', kind === 'smart' ? { owner, spec, names } : { owner, spec, names, account_kind: kind });
  }

  /// The owner's grant; with `delegationSignature`, its EIP-7702 authorization too (when the
  /// proposal asked for one).
  grant(id: Hex, signature: Hex, delegationSignature?: Hex): Promise<{ session_id: Hex; status: string }> {
    const body = delegationSignature ? { signature, delegation_signature: delegationSignature } : { signature };
    return this.request('POST', `/v1/sessions/${id}/grant`, body);
  }

  /// One session, its chain state read now.
  session(id: Hex): Promise<SessionInfo> {
    return this.request('GET', `/v1/sessions/${id}`);
  }

  sessions(account: Address): Promise<{ sessions: SessionInfo[] }> {
    return this.request('GET', `/v1/sessions?account=${account}`);
  }

  /// One execution; `idempotencyKey` makes a retried request run at most once. An execution
  /// whose outcome the service does not know yet (it may have reached the chain) is followed
  /// until the service settles it, for up to a minute; after that it is returned as `unknown`.
  async execute(id: Hex, calls: CallRequest[], idempotencyKey: string): Promise<Execution> {
    let execution: Execution = await this.request(
      'POST',
      `/v1/sessions/${id}/execute`,
      { calls },
      { 'idempotency-key': idempotencyKey },
    );
    for (let i = 0; execution.status === 'unknown' && i < 60; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      execution = await this.execution(execution.execution_id);
    }
    return execution;
  }

  /// What the service knows of one execution.
  execution(id: string): Promise<Execution> {
    return this.request('GET', `/v1/executions/${encodeURIComponent(id)}`);
  }

  revoke(id: Hex): Promise<{ session_id: Hex; status: string; onchain: { digest: Hex; typed_data: TypedData } }> {
    return this.request('POST', `/v1/sessions/${id}/revoke`);
  }

  /// `onchain`: `included`, `not_needed` (never enabled on chain) or `pending` (the service retries);
  /// `message` says which in words.
  revokeOnchain(
    id: Hex,
    signature: Hex,
  ): Promise<{ session_id: Hex; status: string; onchain: string; message: string; transaction_hash: Hex | null }> {
    return this.request('POST', `/v1/sessions/${id}/revoke/onchain`, { signature });
  }

  /// The app's sponsorship budget for today and what is left of it.
  sponsorship(): Promise<Sponsorship> {
    return this.request('GET', '/v1/sponsorship');
  }

  audit(account: Address, limit = 200): Promise<{ events: AuditEvent[] }> {
    return this.request('GET', `/v1/audit?account=${account}&limit=${limit}`);
  }
}
