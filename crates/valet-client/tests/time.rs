//! Time against a real anvil whose clock is steered: a chain whose last block lags the wall
//! clock (an idle devnet) and blocks that advance time (as a live chain's do, unlike automine).
//! Sessions last their whole duration from Valet's clock, the later of the two (opening at the latest
//! block, where bundlers simulate); pre-flight judges an operation at
//! every time a block may include it, up to `INCLUSION_MARGIN` later, so an operation whose
//! session ends or whose allowance period turns meanwhile is refused before anything is sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use valet_client::client::INCLUSION_MARGIN;
use valet_client::{Account, Devnet, Direct, Error, SessionHandle, Valet};
use valet_core::spec::{Labels, SessionSpec, explain};
use valet_core::{Call, Refusal};

// The demo contracts, bound from their artifacts as an app binds the contracts it calls
// (valet-client exports its own bindings of them only with its `demo` feature).
alloy::sol!(
    #[sol(rpc)]
    ValetNFT,
    "../../contracts/artifacts/ValetNFT.json"
);

const ETHER: u128 = 1_000_000_000_000_000_000;

const MINT: &str = "[[permission]]\ntarget = \"ValetNFT\"\nfunction = \"mint(address to, uint256 quantity)\"\n\
                    rules = [{ arg = \"to\", eq = \"$account\" }]\n";

struct Setup {
    devnet: Devnet,
    valet: Valet,
    owner: PrivateKeySigner,
    account: Account,
    names: BTreeMap<String, Address>,
}

async fn setup() -> Setup {
    let devnet = Devnet::start().await.expect("devnet");
    let direct = Direct::new(devnet.provider_for(1), devnet.key(1).address()).await.expect("direct submitter");
    let valet = Valet::new(devnet.provider.clone(), Arc::new(direct), devnet.deployment()).await.expect("client");
    let owner = devnet.key(3);
    let account = valet.account(owner.address(), U256::ZERO).await.expect("account");
    devnet.fund(account.address, U256::from(ETHER)).await.expect("fund");
    let names = BTreeMap::from([
        ("ValetNFT".to_string(), devnet.addresses.nft),
        ("Payee".to_string(), devnet.key(6).address()),
    ]);
    Setup { devnet, valet, owner, account, names }
}

impl Setup {
    /// Proposes a session for `valid_for` allowing `body` (TOML; by default minting to the
    /// account) and grants it.
    async fn grant(&self, valid_for: &str, body: &str) -> SessionHandle {
        let body = if body.is_empty() { MINT } else { body };
        let spec = format!("valid_for = \"{valid_for}\"\n{body}\n[fees]\nbudget = \"0.5 ether\"\n");
        let spec = SessionSpec::from_toml(&spec).expect("spec parses");
        let proposal =
            self.valet.propose(&self.account, &spec, &self.names, &Labels::default()).await.expect("propose");
        let signature = self.owner.sign_hash_sync(&proposal.digest).expect("owner signs").as_bytes();
        proposal.grant(&signature).expect("the owner's grant")
    }

    fn mint(&self) -> Call {
        let data = ValetNFT::mintCall { to: self.account.address, quantity: U256::from(1) }.abi_encode();
        Call { target: self.devnet.addresses.nft, value: U256::ZERO, data: data.into() }
    }

    /// `wei` paid to the payee.
    fn pay(&self, wei: u64) -> Call {
        Call { target: self.names["Payee"], value: U256::from(wei), data: Default::default() }
    }

    async fn rpc(&self, method: &str, param: u64) {
        let _: serde_json::Value =
            self.devnet.provider.raw_request(method.to_string().into(), [param]).await.expect(method);
    }

    async fn block(&self) -> (u64, u64) {
        let number = self.devnet.provider.get_block_number().await.expect("block number");
        (number, self.valet.chain_time().await.expect("chain time"))
    }

    /// `calls` are refused before sending, and nothing reaches the chain: no block, the same
    /// nonce. Returns the refusal.
    async fn refused_before_sending(&self, session: &SessionHandle, calls: &[Call]) -> Refusal {
        let (block, _) = self.block().await;
        let nonce = self.valet.nonce(self.account.address, session.nonce_key()).await.expect("nonce");
        let refusal = match self.valet.execute(&self.account, session, calls).await {
            Err(Error::Preflight(refusal)) => refusal,
            other => panic!("expected a refusal before sending, got {other:?}"),
        };
        assert_eq!(self.block().await.0, block, "nothing was sent");
        assert_eq!(self.valet.nonce(self.account.address, session.nonce_key()).await.expect("nonce"), nonce);
        refusal
    }
}

fn wall() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

/// After a devnet idles its last block lags the wall clock, but the next block will carry the
/// wall-clock time: a session proposed then lasts its whole duration from the wall clock, its
/// window opening at the latest block, where bundlers simulate (it used to end early, counted from the last block, 10 minutes in the past: a 2-minute session was over
/// before it was granted).
#[tokio::test]
async fn a_session_proposed_while_the_chain_lags_keeps_its_whole_duration() {
    let s = setup().await;
    // The last block 10 minutes ago, and anvil's clock back at the wall clock: an idle devnet.
    s.rpc("evm_setTime", wall() - 600).await;
    s.devnet.mine().await.expect("mine");
    s.rpc("evm_setTime", wall()).await;
    let before = wall();
    let (_, chain) = s.block().await;
    assert!(chain + 590 <= before, "the chain lags: last block at {chain}, wall clock {before}");
    assert!(s.valet.now().await.expect("now") >= before, "Valet's clock is the later of the two");

    let session = s.grant("2m", "").await;
    assert!(session.session.valid_until + 1 >= before + 120, "the whole 2 minutes from the wall clock");
    assert_eq!(session.session.valid_after, chain, "starts at the latest block, where a bundler simulates");
    let status = s.valet.status(s.account.address, &session.session).await.expect("status");
    assert!(status.usable, "{status:?}");
    assert!(status.valid_until - status.now >= 110, "{status:?}");
    // Usable at once: the direct submitter simulates `handleOps` on the pending block (at the
    // wall clock), not on the lagging latest one, where the session has not begun.
    let done = s.valet.execute(&s.account, &session, &[s.mint()]).await.expect("usable");
    assert!(done.receipt.success && done.enabled_session);
}

/// Blocks that advance time, as a live chain's do: an operation whose session ends within the
/// inclusion margin would be included after it ended (`AA22 expired`, taking a shared
/// `handleOps` down with it). It is refused before sending, as expired; nothing reaches the
/// chain. A session with time left still works on the same chain.
#[tokio::test]
async fn an_op_whose_session_ends_within_the_inclusion_margin_is_refused_before_sending() {
    let s = setup().await;
    let short = s.grant("10s", "").await;
    let long = s.grant("1h", &format!("salt = 1\n{MINT}")).await;
    s.rpc("anvil_setBlockTimestampInterval", INCLUSION_MARGIN).await;

    let refusal = s.refused_before_sending(&short, &[s.mint()]).await;
    match refusal {
        Refusal::OutsideWindow { valid_until, now, .. } => {
            assert_eq!(valid_until, short.session.valid_until);
            assert!(now > valid_until, "judged at the time of inclusion: {refusal:?}");
        }
        other => panic!("expected the session's window, got {other:?}"),
    }
    let words = explain(&refusal, &short.session, &[], &Labels::default());
    assert!(words.starts_with("the session expired at ") && words.ends_with("grant a new one"), "{words}");

    let (_, before) = s.block().await;
    let done = s.valet.execute(&s.account, &long, &[s.mint()]).await.expect("a session with time left");
    assert!(done.receipt.success);
    assert!(s.block().await.1 >= before + INCLUSION_MARGIN, "the block advanced time");
}

/// A periodic allowance narrows an operation's window to the period it claims. Five seconds
/// before the period turns, an operation would be included in the next one (`AA22 expired`):
/// refused before sending, saying when to send it; sent then, it is accepted.
#[tokio::test]
async fn an_op_whose_allowance_period_turns_before_inclusion_waits_for_the_next_period() {
    let s = setup().await;
    // The chain ahead of the wall clock, so that its blocks alone set Valet's clock.
    s.devnet.advance_time(3_600).await.expect("time travel");
    let payments = "[[permission]]\ntarget = \"Payee\"\nvalue_limit = \"10 wei\"\n[[limit]]\nnative = \"10 wei\"\nperiod = \"1m\"\n";
    let session = s.grant("1h", payments).await;
    let start = session.session.valid_after;
    s.rpc("evm_setNextBlockTimestamp", start + 55).await;
    s.devnet.mine().await.expect("mine");
    assert_eq!(s.valet.now().await.expect("now"), start + 55);
    let refusal = s.refused_before_sending(&session, &[s.pay(1)]).await;
    assert_eq!(
        refusal,
        Refusal::OutsideWindow { valid_after: start + 60, valid_until: start + 119, now: start + 55 },
        "not due until the next period begins"
    );
    let words = explain(&refusal, &session.session, &[], &Labels::default());
    assert!(words.starts_with("the allowance's period turns at ") && words.ends_with("send it from then"), "{words}");

    s.rpc("evm_setNextBlockTimestamp", start + 60).await;
    s.devnet.mine().await.expect("mine");
    let done = s.valet.execute(&s.account, &session, &[s.pay(1)]).await.expect("in the new period");
    assert!(done.receipt.success);
    assert_eq!(done.counters.limits[0], (1, 1), "spent 1 wei in period 1");
}
