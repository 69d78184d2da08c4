//! The README's EIP-7702 lines: a plain EOA gets a session at its own address — the owner signs
//! the delegation and the grant, and the session's first operation delegates the EOA to Valet's
//! account, activates it, enables the session and mints. `cargo run --example eoa`.

use std::sync::Arc;

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::sol_types::SolCall;
use valet_client::core::spec::{DEMO_MINT_SPEC, Labels, SessionSpec};
use valet_client::core::{Call, ENTRY_POINT_V08};
use valet_client::{Deployment, Devnet, Direct, Valet};

alloy::sol! {
    #[sol(rpc)]
    interface ValetNFT {
        function mint(address to, uint256 quantity) external;
        function balanceOf(address owner) external view returns (uint256);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let devnet = Devnet::start().await?; // anvil (Prague) + EntryPoint v0.7 and v0.8 + Valet
    let (provider, eoa) = (devnet.provider.clone(), devnet.key(3)); // a plain EOA, no code
    let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await?;
    let (names, labels) = ([("ValetNFT".to_string(), devnet.addresses.nft)].into(), Labels::default());
    let spec = SessionSpec::from_toml(DEMO_MINT_SPEC)?;
    let mint = ValetNFT::mintCall { to: eoa.address(), quantity: U256::from(5) }.abi_encode();
    let call = Call { target: devnet.addresses.nft, value: U256::ZERO, data: mint.into() };
    // README begin
    let submitter = direct.for_entry_point(ENTRY_POINT_V08); // same relayer, same nonce
    let valet = Valet::new(provider, Arc::new(submitter), Deployment::eip7702()).await?;
    let account = valet.account(eoa.address(), U256::ZERO).await?; // the EOA itself
    let proposal = valet.propose(&account, &spec, &names, &labels).await?;
    let grant = eoa.sign_hash_sync(&proposal.digest)?.as_bytes();
    let delegation = valet.sign_delegation(&account, &eoa).await?; // None once it delegates to Valet
    let session = proposal.grant(&grant)?.with_authorization(delegation);
    valet.execute(&account, &session, &[call]).await?; // delegate + activate + enable + mint
    // README end
    let nft = ValetNFT::new(devnet.addresses.nft, valet.provider());
    let held = nft.balanceOf(eoa.address()).call().await?;
    let code = valet.provider().get_code_at(eoa.address()).await?;
    anyhow::ensure!(held == U256::from(5), "the EOA holds {held} NFTs, not 5");
    println!("{} holds {held} NFTs; its code is {code} (a delegation to Valet's account)", eoa.address());
    Ok(())
}
