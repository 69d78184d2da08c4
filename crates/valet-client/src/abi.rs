//! Calldata from a function signature and arguments written as text — what the CLI's
//! `session exec` and the service's `execute` accept: addresses (or known names, or `$account`),
//! numbers (decimal or 0x), `true`/`false`, hex bytes, strings.

use std::collections::BTreeMap;

use alloy::dyn_abi::{DynSolType, DynSolValue};
use alloy::primitives::{Address, Bytes};
use valet_core::spec::Function;

use crate::Error;

/// `function(args)` ABI-encoded with its selector; `$account` stands for `account`, and names in
/// `names` for their addresses in address arguments.
pub fn encode_call(
    function: &str,
    args: &[String],
    account: Address,
    names: &BTreeMap<String, Address>,
) -> Result<Bytes, Error> {
    let f = Function::parse(function)?;
    if f.args.len() != args.len() {
        return Err(Error::Config(format!(
            "{} takes {} argument(s), {} given",
            f.signature(),
            f.args.len(),
            args.len()
        )));
    }
    let mut values = Vec::with_capacity(args.len());
    for (arg, text) in f.args.iter().zip(args) {
        let ty = DynSolType::parse(&arg.ty).map_err(|e| Error::Config(format!("type {}: {e}", arg.ty)))?;
        let text = match (text.as_str(), names.get(text)) {
            ("$account", _) => account.to_string(),
            (t, _) if t.starts_with('$') => {
                return Err(Error::Config(format!(
                    "argument `{}` ({}) = `{t}`: unknown placeholder (the only one is `$account`)",
                    arg.name, arg.ty
                )));
            }
            (_, Some(address)) if arg.ty == "address" => address.to_string(),
            _ => text.clone(),
        };
        let value: DynSolValue = ty.coerce_str(&text).map_err(|e| {
            // The parser's error spans lines (input, caret, reason): keep the reason.
            let e = e.to_string();
            let reason = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("not parsable").trim().to_string();
            Error::Config(format!("argument `{}` ({}) = `{text}`: {reason}", arg.name, arg.ty))
        })?;
        values.push(value);
    }
    let mut data = f.selector().to_vec();
    data.extend(DynSolValue::Tuple(values).abi_encode_params());
    Ok(data.into())
}

/// An address, or a name known in `names`.
pub fn resolve_address(text: &str, names: &BTreeMap<String, Address>) -> Result<Address, Error> {
    if let Some(a) = names.get(text) {
        return Ok(*a);
    }
    text.parse::<Address>().map_err(|_| {
        let known: Vec<&str> = names.keys().map(String::as_str).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        Error::Config(format!("`{text}` is neither an address nor a known name (known: {known})"))
    })
}
