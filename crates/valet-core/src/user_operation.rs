//! ERC-4337 v0.7 UserOperations: the JSON-RPC (unpacked) fields, the packed form the
//! EntryPoint takes, the userOpHash, and the nonce keys that select a validator and a lane.
//! EntryPoint v0.8 takes the same packed form; only its userOpHash differs (an EIP-712 digest,
//! [`PackedUserOperation::hash_v08`]), and it reads an initCode starting with
//! [`EIP7702_INIT_MARKER`] as "this sender is an EIP-7702 account".

use alloy_primitives::{Address, B256, Bytes, KECCAK256_EMPTY, U256, address, b256, keccak256};

/// The initCode of an EIP-7702 sender starts with these 20 bytes (`0x7702` padded with zeros);
/// calldata may follow, which EntryPoint v0.8's SenderCreator calls the sender with before
/// validation. As an unpacked [`UserOperation`], `factory = EIP7702_INIT_MARKER` and
/// `factory_data` = that calldata (what bundlers take in JSON-RPC).
pub const EIP7702_INIT_MARKER: Address = address!("0x7702000000000000000000000000000000000000");

/// EntryPoint v0.8's struct type for its EIP-712 userOpHash.
pub const PACKED_USER_OP_TYPE: &str = "PackedUserOperation(address sender,uint256 nonce,bytes initCode,bytes callData,\
bytes32 accountGasLimits,uint256 preVerificationGas,bytes32 gasFees,bytes paymasterAndData)";
/// `keccak256(PACKED_USER_OP_TYPE)` (EntryPoint v0.8's `getPackedUserOpTypeHash()`).
pub const PACKED_USER_OP_TYPEHASH: B256 = b256!("0x29a0bca4af4be3421398da00295e58e6d7de38cb492214754cb6a47507dd6f8e");
/// EntryPoint v0.8's EIP-712 domain name; its version is "1".
pub const ENTRY_POINT_V08_DOMAIN_NAME: &str = "ERC4337";
/// `keccak256("ERC4337")`.
const ENTRY_POINT_V08_NAME_HASH: B256 = b256!("0x364da28a5c92bcc87fe97c8813a6c6b8a3a049b0ea0a328fcb0b4f0e00337586");
/// `keccak256("1")`.
const VERSION_1_HASH: B256 = b256!("0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6");

/// Whether `init_code` marks an EIP-7702 sender: at least 20 bytes, the first 20 being
/// [`EIP7702_INIT_MARKER`] (EntryPoint v0.8's `_isEip7702InitCode`).
pub fn is_eip7702_init_code(init_code: &[u8]) -> bool {
    init_code.len() >= 20 && init_code[..20] == EIP7702_INIT_MARKER[..]
}

/// EntryPoint v0.8's EIP-712 domain separator on `chain_id` at `entry_point`
/// (`getDomainSeparatorV4()`).
pub fn entry_point_v08_domain_separator(entry_point: Address, chain_id: u64) -> B256 {
    keccak256(
        [
            crate::eip712::DOMAIN_TYPEHASH.0,
            ENTRY_POINT_V08_NAME_HASH.0,
            VERSION_1_HASH.0,
            U256::from(chain_id).to_be_bytes(),
            entry_point.into_word().0,
        ]
        .as_flattened(),
    )
}

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
    /// An EIP-7702 sender's signed delegation, when this operation's transaction must carry it
    /// (the sender is not delegated yet): the submitter puts it in the authorization list of its
    /// type-4 `handleOps` transaction (bundlers take it as `eip7702Auth`). Not hashed.
    pub eip7702_auth: Option<Eip7702Auth>,
    /// The address an EIP-7702 sender's code delegates to, for the userOpHash of an operation
    /// whose initCode is [`EIP7702_INIT_MARKER`] (EntryPoint v0.8 hashes it in the marker's
    /// place). Taken from `eip7702_auth` when that is set. Not sent.
    pub delegate: Option<Address>,
}

/// An EIP-7702 authorization signed by the EOA (`chain_id`, `address` it delegates to, its
/// `nonce`; the secp256k1 signature as `y_parity`, `r`, `s`), as bundlers take it (`eip7702Auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eip7702Auth {
    /// The chain it is valid on (0: every chain — Valet never signs those).
    pub chain_id: Quantity,
    /// The contract the EOA delegates to.
    pub address: Address,
    /// The EOA's transaction nonce it was signed for: valid only while the EOA has that nonce.
    pub nonce: Quantity,
    /// The signature's y parity (0 or 1).
    pub y_parity: Quantity,
    /// The signature's r (32 bytes, as bundlers read it).
    pub r: B256,
    /// The signature's s.
    pub s: B256,
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

    /// The userOpHash the EntryPoint at `entry_point` computes (`getUserOpHash`): EntryPoint
    /// v0.8's EIP-712 digest at [`crate::ENTRY_POINT_V08`] (with this operation's delegate for an
    /// EIP-7702 initCode), v0.7's everywhere else.
    pub fn hash(&self, entry_point: Address, chain_id: u64) -> B256 {
        let packed = self.pack();
        if entry_point == crate::ENTRY_POINT_V08 {
            let delegate = self.eip7702_auth.map(|a| a.address).or(self.delegate);
            // Without a delegate, a 7702 initCode hashes as the bare marker would be: a hash no
            // account signs for, so the operation is refused (AA24), never taken for another.
            return packed.hash_v08(entry_point, chain_id, delegate).unwrap_or_else(|| {
                packed.hash_v08(entry_point, chain_id, Some(EIP7702_INIT_MARKER)).unwrap_or_default()
            });
        }
        packed.hash(entry_point, chain_id)
    }

    /// The userOpHash EntryPoint v0.8 computes: [`PackedUserOperation::hash_v08`] of the packed
    /// form. `None` when the operation marks an EIP-7702 sender but `delegate` is `None`.
    #[must_use]
    pub fn hash_v08(&self, entry_point: Address, chain_id: u64, delegate: Option<Address>) -> Option<B256> {
        self.pack().hash_v08(entry_point, chain_id, delegate)
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

    /// The userOpHash EntryPoint v0.8 computes (`getUserOpHash`): the EIP-712 digest, in the
    /// domain ("ERC4337", "1", `chain_id`, `entry_point`), of `PackedUserOperation(sender, nonce,
    /// initCode, callData, accountGasLimits, preVerificationGas, gasFees, paymasterAndData)`
    /// without the signature.
    ///
    /// For an EIP-7702 sender (`init_code` starts with [`EIP7702_INIT_MARKER`]) the EntryPoint
    /// hashes `delegate ‖ init_code[20..]` in place of the initCode, `delegate` being the
    /// implementation the sender's delegation designator names. It reads it from the sender's code;
    /// here it is given, because the first operation is signed before the authorization that
    /// delegates lands. `delegate` is ignored for any other initCode, and the hash is `None` when
    /// the marker is there but `delegate` is not: no hash the EntryPoint would compute exists
    /// without one (it refuses a marked sender that has not delegated).
    #[must_use]
    pub fn hash_v08(&self, entry_point: Address, chain_id: u64, delegate: Option<Address>) -> Option<B256> {
        let init_code_hash = if is_eip7702_init_code(&self.init_code) {
            keccak256([delegate?.as_slice(), &self.init_code[20..]].concat())
        } else {
            hash_bytes(&self.init_code)
        };
        let struct_hash = keccak256(
            [
                PACKED_USER_OP_TYPEHASH.0,
                self.sender.into_word().0,
                self.nonce.to_be_bytes(),
                init_code_hash.0,
                hash_bytes(&self.call_data).0,
                self.account_gas_limits.0,
                self.pre_verification_gas.to_be_bytes(),
                self.gas_fees.0,
                hash_bytes(&self.paymaster_and_data).0,
            ]
            .as_flattened(),
        );
        let domain = entry_point_v08_domain_separator(entry_point, chain_id);
        Some(keccak256([&[0x19u8, 0x01][..], domain.as_slice(), struct_hash.as_slice()].concat()))
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

    /// A factory, or EIP-7702's marker, which bundlers spell `"0x7702"` (not as an address).
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Factory {
        Eip7702(Eip7702Marker),
        Address(Address),
    }

    #[derive(Serialize, Deserialize)]
    enum Eip7702Marker {
        #[serde(rename = "0x7702")]
        Marker,
    }

    impl From<Address> for Factory {
        fn from(a: Address) -> Self {
            if a == super::EIP7702_INIT_MARKER { Factory::Eip7702(Eip7702Marker::Marker) } else { Factory::Address(a) }
        }
    }

    impl From<Factory> for Address {
        fn from(f: Factory) -> Self {
            match f {
                Factory::Eip7702(_) => super::EIP7702_INIT_MARKER,
                Factory::Address(a) => a,
            }
        }
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        sender: Address,
        nonce: Quantity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factory: Option<Factory>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eip7702_auth: Option<super::Eip7702Auth>,
    }

    impl Serialize for UserOperation {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let q = |v: u128| Quantity(U256::from(v));
            let paymaster = self.paymaster.is_some();
            Wire {
                sender: self.sender,
                nonce: Quantity(self.nonce),
                factory: self.factory.map(Factory::from),
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
                eip7702_auth: self.eip7702_auth,
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
                factory: w.factory.map(Address::from),
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
                delegate: w.eip7702_auth.map(|a| a.address),
                eip7702_auth: w.eip7702_auth,
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

    /// The v0.8 constants are the hashes of their strings, and the type string is the one
    /// EntryPoint v0.8 (and ERC-4337) spells.
    #[test]
    fn the_v08_type_hash_is_its_string() {
        assert_eq!(
            PACKED_USER_OP_TYPE,
            "PackedUserOperation(address sender,uint256 nonce,bytes initCode,bytes callData,bytes32 accountGasLimits,\
             uint256 preVerificationGas,bytes32 gasFees,bytes paymasterAndData)"
        );
        assert_eq!(PACKED_USER_OP_TYPEHASH, keccak256(PACKED_USER_OP_TYPE));
        assert_eq!(ENTRY_POINT_V08_NAME_HASH, keccak256(ENTRY_POINT_V08_DOMAIN_NAME));
        assert_eq!(VERSION_1_HASH, keccak256("1"));
    }

    fn op_with_init_code(init_code: &[u8]) -> PackedUserOperation {
        PackedUserOperation {
            sender: address!("0x1111111111111111111111111111111111111111"),
            nonce: U256::from(7),
            init_code: Bytes::copy_from_slice(init_code),
            call_data: Bytes::from_static(&[0xde, 0xad]),
            ..PackedUserOperation::default()
        }
    }

    /// A 7702 initCode is hashed as `delegate ‖ rest`, so the hash commits to the delegate; it
    /// needs one; other initCodes ignore it.
    #[test]
    fn a_7702_init_code_hashes_the_delegate() {
        let (ep, delegate) = (crate::ENTRY_POINT_V08, address!("0x2222222222222222222222222222222222222222"));
        let marked = op_with_init_code(&[EIP7702_INIT_MARKER.as_slice(), &[0xab, 0xcd]].concat());
        assert_eq!(marked.hash_v08(ep, 1, None), None);
        let as_if_factory = op_with_init_code(&[delegate.as_slice(), &[0xab, 0xcd]].concat());
        assert_eq!(marked.hash_v08(ep, 1, Some(delegate)), as_if_factory.hash_v08(ep, 1, None));
        let other = Some(address!("0x3333333333333333333333333333333333333333"));
        assert_ne!(marked.hash_v08(ep, 1, Some(delegate)), marked.hash_v08(ep, 1, other));
        // The bare marker hashes as the delegate alone.
        let bare = op_with_init_code(EIP7702_INIT_MARKER.as_slice());
        assert_eq!(bare.hash_v08(ep, 1, Some(delegate)), op_with_init_code(delegate.as_slice()).hash_v08(ep, 1, None));
        // Not the marker: 19 bytes of it, or the marker later on.
        let plain = op_with_init_code(&EIP7702_INIT_MARKER[..19]);
        assert_eq!(plain.hash_v08(ep, 1, None), plain.hash_v08(ep, 1, Some(delegate)));
        // The chain and the EntryPoint are in the domain.
        assert_ne!(plain.hash_v08(ep, 1, None), plain.hash_v08(ep, 2, None));
        assert_ne!(plain.hash_v08(ep, 1, None), plain.hash_v08(crate::ENTRY_POINT_V07, 1, None));
    }
}
