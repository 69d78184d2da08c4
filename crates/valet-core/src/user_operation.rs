//! ERC-4337 v0.7 UserOperations: the JSON-RPC (unpacked) fields, the packed form the
//! EntryPoint takes, the userOpHash, and the nonce keys that select a validator and a lane.

use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256, keccak256};

/// A v0.7 UserOperation, with the fields bundlers use in JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserOperation {
    /// The account.
    pub sender: Address,
    /// Key (192 bits) ‖ sequence (64 bits).
    pub nonce: U256,
    /// The factory deploying the account in this operation, if any.
    pub factory: Option<Address>,
    /// The factory's calldata.
    pub factory_data: Bytes,
    /// The account's calldata.
    pub call_data: Bytes,
    /// Gas for the execution.
    pub call_gas_limit: u128,
    /// Gas for validation (and deployment).
    pub verification_gas_limit: u128,
    /// Gas the bundler is paid for overhead.
    pub pre_verification_gas: U256,
    /// EIP-1559 max fee.
    pub max_fee_per_gas: u128,
    /// EIP-1559 priority fee.
    pub max_priority_fee_per_gas: u128,
    /// Paymaster, if any.
    pub paymaster: Option<Address>,
    /// Paymaster validation gas.
    pub paymaster_verification_gas_limit: u128,
    /// Paymaster postOp gas.
    pub paymaster_post_op_gas_limit: u128,
    /// Paymaster data.
    pub paymaster_data: Bytes,
    /// The signature the account's validation reads.
    pub signature: Bytes,
}

/// The packed form `EntryPoint.handleOps` takes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackedUserOperation {
    /// The account.
    pub sender: Address,
    /// Key ‖ sequence.
    pub nonce: U256,
    /// factory ‖ factoryData, or empty.
    pub init_code: Bytes,
    /// The account's calldata.
    pub call_data: Bytes,
    /// verificationGasLimit (16 bytes) ‖ callGasLimit (16 bytes).
    pub account_gas_limits: B256,
    /// Pre-verification gas.
    pub pre_verification_gas: U256,
    /// maxPriorityFeePerGas (16 bytes) ‖ maxFeePerGas (16 bytes).
    pub gas_fees: B256,
    /// paymaster ‖ verification gas (16) ‖ postOp gas (16) ‖ data, or empty.
    pub paymaster_and_data: Bytes,
    /// The signature.
    pub signature: Bytes,
}

/// `keccak256(bytes)`, the empty bytes' (no initCode, no paymaster: most operations) from the
/// constant.
fn hash_bytes(bytes: &[u8]) -> B256 {
    if bytes.is_empty() { KECCAK256_EMPTY } else { keccak256(bytes) }
}

fn pack128(high: u128, low: u128) -> B256 {
    let mut w = [0u8; 32];
    w[..16].copy_from_slice(&high.to_be_bytes());
    w[16..].copy_from_slice(&low.to_be_bytes());
    B256::from(w)
}

impl UserOperation {
    /// The packed form.
    pub fn pack(&self) -> PackedUserOperation {
        let init_code = match self.factory {
            Some(f) => [f.as_slice(), &self.factory_data].concat().into(),
            None => Bytes::new(),
        };
        let paymaster_and_data = match self.paymaster {
            Some(p) => [
                p.as_slice(),
                &self.paymaster_verification_gas_limit.to_be_bytes(),
                &self.paymaster_post_op_gas_limit.to_be_bytes(),
                &self.paymaster_data,
            ]
            .concat()
            .into(),
            None => Bytes::new(),
        };
        PackedUserOperation {
            sender: self.sender,
            nonce: self.nonce,
            init_code,
            call_data: self.call_data.clone(),
            account_gas_limits: pack128(self.verification_gas_limit, self.call_gas_limit),
            pre_verification_gas: self.pre_verification_gas,
            gas_fees: pack128(self.max_priority_fee_per_gas, self.max_fee_per_gas),
            paymaster_and_data,
            signature: self.signature.clone(),
        }
    }

    /// The userOpHash EntryPoint v0.7 computes (`getUserOpHash`).
    pub fn hash(&self, entry_point: Address, chain_id: u64) -> B256 {
        self.pack().hash(entry_point, chain_id)
    }
}

impl PackedUserOperation {
    /// `keccak256(abi.encode(keccak256(abi.encode(sender, nonce, keccak(initCode),
    /// keccak(callData), accountGasLimits, preVerificationGas, gasFees,
    /// keccak(paymasterAndData))), entryPoint, chainId))`.
    pub fn hash(&self, entry_point: Address, chain_id: u64) -> B256 {
        let inner = keccak256(
            [
                self.sender.into_word().0,
                self.nonce.to_be_bytes(),
                hash_bytes(&self.init_code).0,
                hash_bytes(&self.call_data).0,
                self.account_gas_limits.0,
                self.pre_verification_gas.to_be_bytes(),
                self.gas_fees.0,
                hash_bytes(&self.paymaster_and_data).0,
            ]
            .as_flattened(),
        );
        keccak256([inner.0, entry_point.into_word().0, U256::from(chain_id).to_be_bytes()].as_flattened())
    }
}

/// The 192-bit nonce key that routes an operation to `validator` on `lane`:
/// validator (20 bytes) ‖ lane (4 bytes).
pub fn validator_nonce_key(validator: Address, lane: u32) -> U256 {
    (U256::from_be_slice(validator.as_slice()) << 32) | U256::from(lane)
}

/// The lane a session uses by convention: the first 4 bytes of its id.
pub fn session_lane(session_id: B256) -> u32 {
    u32::from_be_bytes([session_id[0], session_id[1], session_id[2], session_id[3]])
}

/// The full nonce: key (192 bits) ‖ sequence (64 bits).
pub fn nonce(key: U256, sequence: u64) -> U256 {
    (key << 64) | U256::from(sequence)
}

/// The JSON-RPC form (ERC-7769): camelCase fields, quantities as `0x` hex, `factory`/`paymaster`
/// fields omitted when absent. Deserialising accepts what bundlers send back (quantities as hex
/// or as numbers, absent or `null` optional fields, unknown fields ignored).
mod json {
    use alloy_primitives::{Address, Bytes, U256};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::UserOperation;

    /// A JSON-RPC quantity: written as `"0x…"`; read from hex, a decimal string or a number.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Quantity(pub U256);

    impl Serialize for Quantity {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&format!("{:#x}", self.0))
        }
    }

    impl<'de> Deserialize<'de> for Quantity {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Raw {
                Text(String),
                Number(u64),
            }
            match Raw::deserialize(d)? {
                Raw::Number(n) => Ok(Self(U256::from(n))),
                Raw::Text(t) => {
                    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                        Some(hex) if !hex.is_empty() => U256::from_str_radix(hex, 16),
                        Some(_) => Ok(U256::ZERO),
                        None => U256::from_str_radix(&t, 10),
                    };
                    parsed.map(Self).map_err(|_| serde::de::Error::custom(format!("`{t}` is not a quantity")))
                }
            }
        }
    }

    fn narrow<E: serde::de::Error>(field: &str, q: Quantity) -> Result<u128, E> {
        u128::try_from(q.0).map_err(|_| E::custom(format!("{field} {} does not fit in 128 bits", q.0)))
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        sender: Address,
        nonce: Quantity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factory: Option<Address>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factory_data: Option<Bytes>,
        call_data: Bytes,
        call_gas_limit: Quantity,
        verification_gas_limit: Quantity,
        pre_verification_gas: Quantity,
        max_fee_per_gas: Quantity,
        max_priority_fee_per_gas: Quantity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paymaster: Option<Address>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paymaster_verification_gas_limit: Option<Quantity>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paymaster_post_op_gas_limit: Option<Quantity>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paymaster_data: Option<Bytes>,
        signature: Bytes,
    }

    impl Serialize for UserOperation {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let q = |v: u128| Quantity(U256::from(v));
            let paymaster = self.paymaster.is_some();
            Wire {
                sender: self.sender,
                nonce: Quantity(self.nonce),
                factory: self.factory,
                factory_data: self.factory.map(|_| self.factory_data.clone()),
                call_data: self.call_data.clone(),
                call_gas_limit: q(self.call_gas_limit),
                verification_gas_limit: q(self.verification_gas_limit),
                pre_verification_gas: Quantity(self.pre_verification_gas),
                max_fee_per_gas: q(self.max_fee_per_gas),
                max_priority_fee_per_gas: q(self.max_priority_fee_per_gas),
                paymaster: self.paymaster,
                paymaster_verification_gas_limit: paymaster.then(|| q(self.paymaster_verification_gas_limit)),
                paymaster_post_op_gas_limit: paymaster.then(|| q(self.paymaster_post_op_gas_limit)),
                paymaster_data: paymaster.then(|| self.paymaster_data.clone()),
                signature: self.signature.clone(),
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for UserOperation {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let w = Wire::deserialize(d)?;
            Ok(Self {
                sender: w.sender,
                nonce: w.nonce.0,
                factory: w.factory,
                factory_data: w.factory_data.unwrap_or_default(),
                call_data: w.call_data,
                call_gas_limit: narrow("callGasLimit", w.call_gas_limit)?,
                verification_gas_limit: narrow("verificationGasLimit", w.verification_gas_limit)?,
                pre_verification_gas: w.pre_verification_gas.0,
                max_fee_per_gas: narrow("maxFeePerGas", w.max_fee_per_gas)?,
                max_priority_fee_per_gas: narrow("maxPriorityFeePerGas", w.max_priority_fee_per_gas)?,
                paymaster: w.paymaster,
                paymaster_verification_gas_limit: narrow(
                    "paymasterVerificationGasLimit",
                    w.paymaster_verification_gas_limit.unwrap_or_default(),
                )?,
                paymaster_post_op_gas_limit: narrow(
                    "paymasterPostOpGasLimit",
                    w.paymaster_post_op_gas_limit.unwrap_or_default(),
                )?,
                paymaster_data: w.paymaster_data.unwrap_or_default(),
                signature: w.signature,
            })
        }
    }
}

pub use json::Quantity;

#[cfg(test)]
mod tests {
    use super::*;

    /// The constant stands for hashing the empty bytes; other bytes are hashed.
    #[test]
    fn the_empty_bytes_hash_is_the_constant() {
        assert_eq!(hash_bytes(&[]), keccak256([]));
        assert_eq!(hash_bytes(&[0x01]), keccak256([0x01]));
    }
}
