// A session whose key lives where the app runs (a browser tab, a worker, Node): propose it, have
// the owner sign its grant once, then execute calls with no further prompt through any ERC-4337
// bundler, see what is left, revoke it with the owner's signature. The steps are the Rust
// client's (crates/valet-client/src/client.rs: propose, prepare, execute, status,
// revoke_with_signature); every encoding, digest and decision is valet-core's, through
// WebAssembly (ValetCore). This module only reads the chain, talks to the bundler and signs.

import {
  type Address,
  type Hex,
  type PublicClient,
  encodeFunctionData,
  hexToBigInt,
  parseAbi,
  toHex,
  zeroAddress,
} from 'viem';
import type { CountersAfter, Standing, TokenLabel, ValetCore } from '../core/valet-core';
import { type KeyStore, type SessionKey, type Storage, createSessionKey, loadSessionKey } from './keys';

/// Where Valet is on one chain.
export interface Deployment {
  chainId: number;
  entryPoint: Address;
  factory: Address;
  validator: Address;
}

/// A JSON-RPC endpoint: an EIP-1193 provider, or a viem client (`createClient({ transport })`).
export interface Rpc {
  request(args: { method: string; params?: unknown }): Promise<unknown>;
}

/// What sends the owner's revocation: any funded account's wallet (a relayer's, the app's, the
/// owner's own); a viem wallet client with an account and a chain is one.
export interface Sender {
  sendTransaction(args: { to: Address; data: Hex }): Promise<Hex>;
}

export const VALIDATOR_ABI = parseAbi([
  'function accountEpoch(address account) view returns (uint64)',
  'function isInitialized(address account) view returns (bool)',
  'function isRevoked(address account, bytes32 id) view returns (bool)',
  'function sessionState(address account, bytes session) view returns (uint8 state, uint256 uses, uint256 feesSpent)',
  'function permissionUses(address account, bytes32 id, uint256 permissionIndex) view returns (uint256)',
  'function limitUsage(address account, bytes32 id, uint256 limitIndex) view returns (uint256 spent, uint256 period)',
  'function revokeSessionWithSignature(address account, bytes32 id, bytes signature)',
]);
const FACTORY_ABI = parseAbi([
  'function getAddress(address owner, uint256 salt) view returns (address)',
  'function createAccount(address owner, uint256 salt) returns (address account)',
]);
const ENTRY_POINT_ABI = parseAbi(['function getNonce(address sender, uint192 key) view returns (uint256 nonce)']);

/// A call refused before anything was sent, with the reason in the spec's words (what the CLI
/// prints) and the evaluator's own statement.
export class Refused extends Error {
  constructor(
    readonly reason: string,
    readonly refusal: string,
  ) {
    super(reason);
    this.name = 'Refused';
  }
}

/// A bundler's or the chain's answer that an operation failed.
export class OperationFailed extends Error {
  constructor(
    message: string,
    readonly userOpHash?: Hex,
  ) {
    super(message);
    this.name = 'OperationFailed';
  }
}

/// An ERC-7677 paymaster service that pays a session's operations: its URL (credentials in it,
/// `http://user:API_KEY@host/…`, are sent as Basic authorization, never in errors) and the
/// context it is given with every request.
export interface PaymasterService {
  url: string;
  context?: unknown;
}

/// The paymaster service's refusal (ERC-7677 error: a budget exceeded, not sponsored, …), in its
/// own words; nothing was sent to the bundler.
export class PaymasterRefused extends Error {
  constructor(
    message: string,
    readonly method: string,
    readonly code?: number,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'PaymasterRefused';
  }
}

/// Paymaster fields as ERC-7677 answers them.
interface PaymasterFields {
  paymaster: Address;
  paymasterData: Hex;
  paymasterVerificationGasLimit?: Hex;
  paymasterPostOpGasLimit?: Hex;
  isFinal?: boolean;
}

/// Calls `method` of the ERC-7677 service with `[op, entryPoint, chainId, context]`.
async function paymasterCall(
  service: PaymasterService,
  method: 'pm_getPaymasterStubData' | 'pm_getPaymasterData',
  op: RpcUserOperation,
  entryPoint: Address,
  chainId: number,
): Promise<PaymasterFields> {
  // fetch() refuses URLs with credentials: they go in an Authorization header instead.
  const url = new URL(service.url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers.authorization = `Basic ${btoa(credentials)}`;
    url.username = '';
    url.password = '';
  }
  const where = `${url.origin}${url.pathname}`;
  const params = [op, entryPoint, toHex(chainId), service.context ?? null];
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
  } catch (error) {
    throw new PaymasterRefused(
      `paymaster ${where} unreachable (${method}): ${error instanceof Error ? error.message : error}`,
      method,
    );
  }
  const text = await response.text();
  let body: { result?: PaymasterFields; error?: { code?: number; message?: string; data?: unknown } };
  try {
    body = JSON.parse(text);
  } catch {
    throw new PaymasterRefused(`paymaster ${where} answered ${method} with HTTP ${response.status}: ${text.slice(0, 200)}`, method);
  }
  if (body.error) {
    throw new PaymasterRefused(body.error.message ?? `paymaster error ${body.error.code}`, method, body.error.code, body.error.data);
  }
  const fields = body.result;
  if (!response.ok || !fields || typeof fields.paymaster !== 'string') {
    throw new PaymasterRefused(`paymaster ${where} answered ${method} with HTTP ${response.status}: ${text.slice(0, 200)}`, method);
  }
  return fields;
}

/// Sets `fields` on `op`; gas limits the paymaster leaves out stay as they are.
function applyPaymaster(op: RpcUserOperation, fields: PaymasterFields): void {
  op.paymaster = fields.paymaster;
  op.paymasterData = fields.paymasterData ?? '0x';
  if (fields.paymasterVerificationGasLimit !== undefined) {
    op.paymasterVerificationGasLimit = toHex(BigInt(fields.paymasterVerificationGasLimit));
  }
  if (fields.paymasterPostOpGasLimit !== undefined) {
    op.paymasterPostOpGasLimit = toHex(BigInt(fields.paymasterPostOpGasLimit));
  }
  op.paymasterVerificationGasLimit ??= '0x0';
  op.paymasterPostOpGasLimit ??= '0x0';
}

/// One call of an operation.
export interface Call {
  target: Address;
  value?: bigint;
  data?: Hex;
}

/// What a session is, without its key: enough to use it again (with the key loaded by `id`).
export interface SessionRecord {
  deployment: Deployment;
  owner: Address;
  /// The factory salt, as a decimal string.
  salt: string;
  account: Address;
  packed: Hex;
  id: Hex;
  /// The owner's signature of the grant (enables the session in its first use).
  grant: Hex;
  /// For refusals in the spec's words.
  functions: (string | null)[];
  names: Record<string, Address>;
  tokens: Record<Address, TokenLabel>;
}

/// What the app needs to use sessions: the core, the chain, the bundler.
export interface Context {
  core: ValetCore;
  publicClient: PublicClient;
  /// A standard ERC-4337 bundler (EntryPoint v0.7).
  bundler: Rpc;
  /// How often to ask the bundler for a receipt (ms).
  pollMs?: number;
  /// How long to wait for one (ms).
  timeoutMs?: number;
  /// An ERC-7677 paymaster service paying every operation (see `execute` to override it).
  paymaster?: PaymasterService;
}

/// A proposed session: what the owner reads and signs.
export interface Proposal {
  context: Context;
  record: Omit<SessionRecord, 'grant'>;
  key: SessionKey;
  /// One line per fact, in plain words.
  summary: string[];
  warnings: string[];
  /// `eth_signTypedData_v4` JSON of the grant, and its digest.
  typedData: Record<string, unknown>;
  digest: Hex;
}

/// Valet's clock (the Rust client's `Valet::now`): the latest of the wall clock, the latest
/// block's and the pending block's time; and the latest block's.
async function clock(publicClient: PublicClient): Promise<{ now: number; chainTime: number }> {
  const wall = Math.floor(Date.now() / 1000);
  const [latest, pending] = await Promise.all([
    publicClient.getBlock({ blockTag: 'latest' }),
    publicClient.getBlock({ blockTag: 'pending' }).catch(() => undefined),
  ]);
  const chainTime = Number(latest.timestamp);
  return { now: Math.max(wall, chainTime, pending ? Number(pending.timestamp) : 0), chainTime };
}

/// Proposes a session for `owner`'s account (counterfactual: it need not exist yet) from
/// `spec` (TOML, or JSON with `format`): a fresh session key in `storage`, the session resolved
/// now under the account's epoch, the summary and the grant to sign.
export async function propose(args: {
  context: Context;
  owner: Address;
  salt?: bigint;
  spec: string;
  format?: 'toml' | 'json';
  /// The names the spec may use for contracts and tokens.
  names: Record<string, Address>;
  tokens?: Record<Address, TokenLabel>;
  deployment: Deployment;
  storage?: Storage | KeyStore;
}): Promise<Proposal> {
  const { context, owner, deployment } = args;
  const { core, publicClient } = context;
  const salt = args.salt ?? 0n;
  const account = await publicClient.readContract({
    address: deployment.factory,
    abi: FACTORY_ABI,
    functionName: 'getAddress',
    args: [owner, salt],
  });
  const epoch = await publicClient.readContract({
    address: deployment.validator,
    abi: VALIDATOR_ABI,
    functionName: 'accountEpoch',
    args: [account],
  });
  const { now, chainTime } = await clock(publicClient);
  const key = await createSessionKey({ storage: args.storage ?? 'memory' });
  const tokens = args.tokens ?? {};
  const resolved = core.parseSpec(
    args.spec,
    { now, chainTime, sessionKey: key.address, accountEpoch: epoch.toString(), names: args.names, tokens },
    args.format ?? 'toml',
  );
  const grant = core.grant(resolved.packed, account, deployment.validator, deployment.chainId);
  return {
    context,
    record: {
      deployment,
      owner,
      salt: salt.toString(),
      account,
      packed: resolved.packed,
      id: resolved.id,
      functions: resolved.functions,
      names: args.names,
      tokens,
    },
    key,
    summary: resolved.summary,
    warnings: resolved.warnings,
    typedData: grant.typedData as unknown as Record<string, unknown>,
    digest: grant.digest,
  };
}

/// The session the owner granted with `signature` (of `proposal.typedData`); its key is saved
/// under the session's id.
export async function grant(proposal: Proposal, signature: Hex): Promise<BrowserSession> {
  await proposal.key.save(proposal.record.id);
  return new BrowserSession(proposal.context, { ...proposal.record, grant: signature }, proposal.key);
}

/// A session granted before (its record, kept by the app), with its key loaded from `storage`.
export async function resume(
  context: Context,
  record: SessionRecord,
  storage: Storage | KeyStore,
): Promise<BrowserSession> {
  const key = await loadSessionKey(record.id, { storage });
  if (!key) throw new Error(`no key for session ${record.id} in this store`);
  return new BrowserSession(context, record, key);
}

/// What a session has left, from the chain and the core.
export interface Remaining {
  standing: Standing;
  /// Unix seconds; and how many are left (0 once it has ended).
  validUntil: number;
  secondsLeft: number;
  /// Operations in all: made, allowed, left; null when the session does not count them.
  uses: { made: number; max: number; left: number } | null;
  /// Per permission with a use count.
  permissions: { index: number; made: number; max: number; left: number }[];
  /// Wei of the account's ETH for fees: budget, committed, left.
  fees: { budget: bigint; spent: bigint; left: bigint };
  /// Per limit: amount, spent in its current period, left.
  limits: { index: number; amount: bigint; spent: bigint; left: bigint }[];
  counters: CountersAfter;
}

/// The session's fields as the grant's typed data states them.
interface SessionFields {
  validAfter: string;
  validUntil: string;
  maxUses: number | string;
  feeBudget: string;
  permissions: { maxUses: number | string }[];
  limits: { amount: string; period: number | string }[];
}

/// A v0.7 UserOperation as bundlers take it (ERC-7769): quantities as `0x` hex.
interface RpcUserOperation {
  sender: Address;
  nonce: Hex;
  factory?: Address;
  factoryData?: Hex;
  callData: Hex;
  callGasLimit: Hex;
  verificationGasLimit: Hex;
  preVerificationGas: Hex;
  maxFeePerGas: Hex;
  maxPriorityFeePerGas: Hex;
  paymaster?: Address;
  paymasterVerificationGasLimit?: Hex;
  paymasterPostOpGasLimit?: Hex;
  paymasterData?: Hex;
  signature: Hex;
}

/// A granted session, with its key.
export class BrowserSession {
  constructor(
    readonly context: Context,
    readonly record: SessionRecord,
    private readonly key: SessionKey,
  ) {}

  get id(): Hex {
    return this.record.id;
  }

  get account(): Address {
    return this.record.account;
  }

  /// The session's counters on its account, from the validator's views, and where it stands.
  async chainState(): Promise<{ counters: CountersAfter; standing: Standing; deployed: boolean }> {
    const { publicClient, core } = this.context;
    const { account, packed, id, deployment } = this.record;
    const validator = { address: deployment.validator, abi: VALIDATOR_ABI } as const;
    const session = this.fields();
    const [view, installed, epoch, code] = await Promise.all([
      publicClient.readContract({ ...validator, functionName: 'sessionState', args: [account, packed] }),
      publicClient.readContract({ ...validator, functionName: 'isInitialized', args: [account] }),
      publicClient.readContract({ ...validator, functionName: 'accountEpoch', args: [account] }),
      publicClient.getCode({ address: account }),
    ]);
    const permissionUses = await Promise.all(
      session.permissions.slice(0, 8).map((p, i) =>
        Number(p.maxUses) === 0
          ? Promise.resolve(0n)
          : publicClient.readContract({ ...validator, functionName: 'permissionUses', args: [account, id, BigInt(i)] }),
      ),
    );
    const limits = await Promise.all(
      session.limits.map((_, l) =>
        publicClient.readContract({ ...validator, functionName: 'limitUsage', args: [account, id, BigInt(l)] }),
      ),
    );
    const deployed = code !== undefined && code !== '0x';
    const [state, uses, feesSpent] = view;
    const { counters, standing } = core.chainCounters({
      session: packed,
      state,
      uses: toHex(uses),
      feesSpent: toHex(feesSpent),
      installed,
      accountEpoch: epoch.toString(),
      deployed,
      permissionUses: permissionUses.map((u) => toHex(u)),
      limits: limits.map(([spent, period]) => ({ spent: toHex(spent), period: Number(period) })),
    });
    return { counters, standing, deployed };
  }

  /// Executes `calls` as one operation of this session (a batch when there are several) and
  /// waits for it to be included. A call outside the session throws `Refused` with the exact
  /// reason before anything is sent. With a paymaster (`args.paymaster`, else the context's;
  /// `null`: none) the operation is sponsored through ERC-7677: its stub fields before gas
  /// estimation, its final ones after; a refusal of the service throws `PaymasterRefused` with
  /// its message, and nothing is sent.
  async execute(args: {
    calls: Call[];
    paymaster?: PaymasterService | null;
  }): Promise<{ userOpHash: Hex; transactionHash: Hex; counters: CountersAfter; paymaster?: Address }> {
    const { bundler } = this.context;
    const { entryPoint } = this.record.deployment;
    const paymaster = args.paymaster === undefined ? this.context.paymaster : (args.paymaster ?? undefined);
    let { op, counters } = await this.prepare(args.calls, paymaster);
    let userOpHash: Hex;
    try {
      userOpHash = (await bundler.request({ method: 'eth_sendUserOperation', params: [op, entryPoint] })) as Hex;
    } catch (error) {
      // Deployed by someone else since it was built (AA10): built again, without initCode.
      if (!op.factory || !String(error instanceof Error ? error.message : error).includes('AA10')) throw error;
      ({ op, counters } = await this.prepare(args.calls, paymaster));
      userOpHash = (await bundler.request({ method: 'eth_sendUserOperation', params: [op, entryPoint] })) as Hex;
    }
    const receipt = await this.receipt(userOpHash);
    return { userOpHash, transactionHash: receipt.receipt.transactionHash, counters, paymaster: op.paymaster };
  }

  /// The signed operation of `calls`, and the counters after it; `Refused` if the validator
  /// would refuse it.
  private async prepare(
    calls: Call[],
    paymaster?: PaymasterService,
  ): Promise<{ op: RpcUserOperation; counters: CountersAfter }> {
    const { core, publicClient, bundler } = this.context;
    const { deployment, account, packed, id, grant } = this.record;
    const execution = {
      calls: calls.map((c) => ({ target: c.target, value: toHex(c.value ?? 0n), data: c.data ?? '0x' })),
      batch: calls.length > 1,
    };
    const callData = core.encodeExecution(execution);
    const [{ counters, deployed }, { now }] = await Promise.all([this.chainState(), clock(publicClient)]);
    const enable = counters.state === 'none';
    const judge = (
      gas: { accountGasLimits?: Hex; preVerificationGas?: string; gasFees?: Hex; paymasterAndData?: Hex },
      indices?: number[],
    ) => {
      const verdict = core.evaluate({
        session: packed,
        account,
        validator: deployment.validator,
        callData,
        indices,
        enable,
        gas,
        // At every time a block may include it (from now to 12 s later), as the Rust client.
        now,
        forInclusion: true,
        counters,
        functions: this.record.functions,
        names: this.record.names,
        tokens: this.record.tokens,
      });
      if (!verdict.accepted) throw new Refused(verdict.reason, verdict.refusal);
      return verdict;
    };
    // First pass: the calls with a nominal fee of 1 wei, so a session that may not pay fees is
    // refused before estimating; it also picks each call's permission. With a paymaster, the
    // calls alone (free): the fee rule waits for the paymaster's fields.
    const nominal = { preVerificationGas: '0x1', gasFees: toHex(1n, { size: 32 }) };
    const { indices } = judge(paymaster ? {} : nominal);

    const nonce = await publicClient.readContract({
      address: deployment.entryPoint,
      abi: ENTRY_POINT_ABI,
      functionName: 'getNonce',
      args: [account, hexToBigInt(core.nonceKey(id, deployment.validator))],
    });
    const fees = await this.fees();
    const op: RpcUserOperation = {
      sender: account,
      nonce: toHex(nonce),
      ...(deployed
        ? {}
        : {
            factory: deployment.factory,
            factoryData: encodeFunctionData({
              abi: FACTORY_ABI,
              functionName: 'createAccount',
              args: [this.record.owner, BigInt(this.record.salt)],
            }),
          }),
      callData,
      callGasLimit: '0x0',
      verificationGasLimit: '0x0',
      preVerificationGas: '0x0',
      maxFeePerGas: toHex(fees.maxFeePerGas),
      maxPriorityFeePerGas: toHex(fees.maxPriorityFeePerGas),
      signature: core.stubSignature(packed, now, indices, enable ? grant : undefined),
    };
    // Fields the paymaster says are final already: kept as they are, whatever the estimate.
    let finalFields: PaymasterFields | undefined;
    if (paymaster) {
      const stub = await paymasterCall(paymaster, 'pm_getPaymasterStubData', op, deployment.entryPoint, deployment.chainId);
      applyPaymaster(op, stub);
      if (stub.isFinal) finalFields = stub;
      // The fee rule, now that the paymaster is known and before estimating: a session that
      // lists other paymasters refuses this one here.
      const packedStub = core.packUserOperation(op, deployment.entryPoint, deployment.chainId).packed;
      judge({ ...nominal, paymasterAndData: packedStub.paymasterAndData }, indices);
    }
    const estimate = (await bundler.request({
      method: 'eth_estimateUserOperationGas',
      params: [op, deployment.entryPoint],
    })) as {
      callGasLimit: Hex;
      verificationGasLimit: Hex;
      preVerificationGas: Hex;
      paymasterVerificationGasLimit?: Hex | null;
      paymasterPostOpGasLimit?: Hex | null;
    };
    op.callGasLimit = toHex(BigInt(estimate.callGasLimit));
    op.verificationGasLimit = toHex(BigInt(estimate.verificationGasLimit));
    op.preVerificationGas = toHex(BigInt(estimate.preVerificationGas));
    if (paymaster) {
      // Paymaster gas limits the estimate leaves out stay the paymaster's own.
      if (estimate.paymasterVerificationGasLimit) {
        op.paymasterVerificationGasLimit = toHex(BigInt(estimate.paymasterVerificationGasLimit));
      }
      if (estimate.paymasterPostOpGasLimit) {
        op.paymasterPostOpGasLimit = toHex(BigInt(estimate.paymasterPostOpGasLimit));
      }
      // The final fields for the estimated operation, before the key signs: the userOpHash
      // covers paymasterAndData.
      applyPaymaster(
        op,
        finalFields ?? (await paymasterCall(paymaster, 'pm_getPaymasterData', op, deployment.entryPoint, deployment.chainId)),
      );
      if (BigInt(op.paymasterVerificationGasLimit ?? '0x0') === 0n) {
        throw new PaymasterRefused(
          'no paymasterVerificationGasLimit: neither the paymaster nor the gas estimate set one',
          'pm_getPaymasterData',
        );
      }
    }

    // Second pass: the operation as it will be signed, its fees against the session's budget.
    const { packed: packedOp, hash } = core.packUserOperation(op, deployment.entryPoint, deployment.chainId);
    const after = judge(
      {
        accountGasLimits: packedOp.accountGasLimits,
        preVerificationGas: String(packedOp.preVerificationGas),
        gasFees: packedOp.gasFees,
        paymasterAndData: packedOp.paymasterAndData,
      },
      indices,
    );
    const prefix = core.signaturePrefix(packed, now, indices, enable ? grant : undefined);
    const keySignature = await this.key.signDigest(core.keyDigest(hash, id, now, indices));
    op.signature = `${prefix}${keySignature.slice(2)}`;
    return { op, counters: after.counters };
  }

  /// The bundler's prices when it offers them (`pimlico_getUserOperationGasPrice`: what it
  /// accepts), otherwise the node's (base fee and `eth_maxPriorityFeePerGas`).
  private async fees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    try {
      const prices = (await this.context.bundler.request({ method: 'pimlico_getUserOperationGasPrice' })) as {
        fast: { maxFeePerGas: Hex; maxPriorityFeePerGas: Hex };
      };
      return {
        maxFeePerGas: BigInt(prices.fast.maxFeePerGas),
        maxPriorityFeePerGas: BigInt(prices.fast.maxPriorityFeePerGas),
      };
    } catch {
      const fees = await this.context.publicClient.estimateFeesPerGas();
      return { maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas };
    }
  }

  private async receipt(
    userOpHash: Hex,
  ): Promise<{ success: boolean; reason?: Hex; receipt: { transactionHash: Hex } }> {
    const deadline = Date.now() + (this.context.timeoutMs ?? 60_000);
    for (;;) {
      const receipt = (await this.context.bundler.request({
        method: 'eth_getUserOperationReceipt',
        params: [userOpHash],
      })) as { success: boolean; reason?: Hex; receipt: { transactionHash: Hex } } | null;
      if (receipt) {
        if (!receipt.success) {
          throw new OperationFailed(`operation ${userOpHash} reverted: ${receipt.reason ?? 'no data'}`, userOpHash);
        }
        return receipt;
      }
      if (Date.now() > deadline) throw new OperationFailed(`no receipt for ${userOpHash} in time`, userOpHash);
      await new Promise((done) => setTimeout(done, this.context.pollMs ?? 250));
    }
  }

  private fields(): SessionFields {
    const { core } = this.context;
    const { packed, account, deployment } = this.record;
    const typed = core.grant(packed, account, deployment.validator, deployment.chainId).typedData;
    return (typed.message as { session: SessionFields }).session;
  }

  /// What is left: uses, per-permission uses, the fee budget, limits, time.
  async remaining(): Promise<Remaining> {
    const fields = this.fields();
    const [{ counters, standing }, { now }] = await Promise.all([this.chainState(), clock(this.context.publicClient)]);
    const validUntil = Number(fields.validUntil);
    const maxUses = Number(fields.maxUses);
    const budget = BigInt(fields.feeBudget);
    const spent = BigInt(counters.feesSpent);
    return {
      standing,
      validUntil,
      secondsLeft: Math.max(0, validUntil - now),
      uses:
        maxUses === 0
          ? null
          : { made: counters.sessionUses, max: maxUses, left: Math.max(0, maxUses - counters.sessionUses) },
      permissions: fields.permissions.flatMap((p, index) => {
        const max = Number(p.maxUses);
        const made = counters.permissionUses[index] ?? 0;
        return max === 0 ? [] : [{ index, made, max, left: Math.max(0, max - made) }];
      }),
      fees: { budget, spent, left: budget > spent ? budget - spent : 0n },
      limits: fields.limits.map((l, index) => {
        const amount = BigInt(l.amount);
        // Spent in an earlier period no longer counts.
        const word = counters.limits[index];
        const period = Number(l.period);
        const start = Number(fields.validAfter);
        const current = period === 0 ? 0 : Math.floor(Math.max(0, now - start) / period);
        const used = word && word.period === current ? BigInt(word.spent) : 0n;
        return { index, amount, spent: used, left: amount > used ? amount - used : 0n };
      }),
      counters,
    };
  }

  /// The owner's revocation of this session, to sign with any wallet (`eth_signTypedData_v4`,
  /// or the digest as a raw hash).
  revocation(): { typedData: Record<string, unknown>; digest: Hex } {
    const { core } = this.context;
    const { account, id, deployment } = this.record;
    const r = core.revocation(account, id, deployment.validator, deployment.chainId);
    return { typedData: r.typedData as unknown as Record<string, unknown>, digest: r.digest };
  }

  /// Revokes the session with the owner's `signature` of `revocation()`, sent by `sender` (any
  /// funded account: the owner needs no ETH), and waits for the transaction. It stops at once:
  /// the key is forgotten here and the validator refuses it.
  async revoke(signature: Hex, sender: Sender): Promise<Hex> {
    const { publicClient } = this.context;
    const { account, id, deployment } = this.record;
    const revoked = await publicClient.readContract({
      address: deployment.validator,
      abi: VALIDATOR_ABI,
      functionName: 'isRevoked',
      args: [account, id],
    });
    if (revoked) throw new Error(`session ${id} is revoked already`);
    // Simulated first: a signature that is not the owner's costs nothing.
    await publicClient.simulateContract({
      address: deployment.validator,
      abi: VALIDATOR_ABI,
      functionName: 'revokeSessionWithSignature',
      args: [account, id, signature],
      account: zeroAddress,
    });
    const hash = await sender.sendTransaction({
      to: deployment.validator,
      data: encodeFunctionData({
        abi: VALIDATOR_ABI,
        functionName: 'revokeSessionWithSignature',
        args: [account, id, signature],
      }),
    });
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new OperationFailed(`revocation ${hash} reverted`);
    await this.key.forget(id);
    return hash;
  }
}
