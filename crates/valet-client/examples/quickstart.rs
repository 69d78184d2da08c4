//! The README's twenty lines: a devnet, a counterfactual account, a session granted with ONE
//! owner signature, and a mint made with the session key alone. `cargo run --example quickstart`.

use std::sync::Arc;

use alloy::primitives::U256;
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use valet_client::core::Call;
use valet_client::core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec};
use valet_client::{Devnet, Direct, Valet};

// The app's binding of the contract it calls (valet-client's bindings are of Valet's contracts).
alloy::sol! {
    interface ValetNFT {
        function mint(address to, uint256 quantity) external;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // README begin
    let devnet = Devnet::start().await?; // anvil + EntryPoint v0.7 + Valet, on 127.0.0.1
    let relayer = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await?;
    let valet = Valet::new(devnet.provider.clone(), Arc::new(relayer), devnet.deployment()).await?;
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await?; // counterfactual
    devnet.fund(account.address, U256::from(10u64.pow(17))).await?;

    // The app proposes (mint ≤ 5 to the account, 10 times, 1 hour); the owner reads and signs ONCE.
    let names = [("ValetNFT".to_string(), devnet.addresses.nft)].into();
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    let proposal = valet.propose(&account, &spec, &names, &Labels::default()).await?;
    println!("{}", proposal.summary.join("\n"));
    let grant = owner.sign_hash_sync(&proposal.digest)?.as_bytes();
    let session = proposal.grant(&grant)?;

    // The session key alone: pre-flight, estimate, sign, submit, wait for the receipt.
    let mint = ValetNFT::mintCall { to: account.address, quantity: U256::from(5) }.abi_encode();
    let call = Call { target: devnet.addresses.nft, value: U256::ZERO, data: mint.into() };
    let done = valet.execute(&account, &session, &[call]).await?;
    println!("minted: {} ({} gas)", done.receipt.transaction_hash, done.receipt.actual_gas_used);
    // README end
    Ok(())
}
