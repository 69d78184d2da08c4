// Session keys in the app's own runtime (a browser, a worker, Node), no service required:
// valet-core through WebAssembly for every encoding and decision, viem for keys, signing and RPC.
// No DOM: a React (or any) app imports it as it is.
//
//   const core = new ValetCore(raw);                       // the bindings, see ../core/valet-core.ts
//   const context = { core, publicClient, bundler };       // bundler: { request } of an ERC-4337 bundler
//   const proposal = await propose({ context, owner, spec, names, deployment, storage: 'indexeddb' });
//   show(proposal.summary);                                // what the owner approves
//   const session = await grant(proposal, await wallet.signTypedData(proposal.typedData));
//   await session.execute({ calls: [{ target: nft, data }] });   // no prompt; `Refused` before sending
//   await session.remaining();                             // uses, budget, time left, from the chain
//   const { typedData } = session.revocation();
//   await session.revoke(await wallet.signTypedData(typedData), relayer);
//   // later, another page: resume(context, session.record, 'indexeddb')
// Sponsored: `paymaster: { url, context? }` (context or `execute`) sends each operation through an ERC-7677
// service (stub before estimating, final after); its refusal throws `PaymasterRefused`, nothing sent.
export * from './keys';
export * from './session';
