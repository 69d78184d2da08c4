//! The OpenAPI 3.1 document served at `/openapi.json`.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// A JSON-RPC endpoint's body: whatever comes (none, not JSON, not a request) is answered with
/// HTTP 200 and a JSON-RPC error saying what is wrong, as JSON-RPC servers do.
fn json_rpc_body() -> Value {
    json!({ "required": false, "content": { "application/json": { "schema": {} } } })
}

fn session_id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/SessionId" } })
}

fn errors(mut responses: Value, codes: &[(&str, &str)]) -> Value {
    for (code, description) in codes {
        responses[*code] = error_response(description);
    }
    responses
}

const AUTH_ERRORS: &[(&str, &str)] = &[("400", "Malformed request"), ("401", "Missing or unknown API key")];

/// The document.
pub fn document() -> Value {
    let object =
        |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Valet session-key service", "version": "1",
                  "description": "Session keys for ERC-4337 smart accounts: propose, grant, execute, show, revoke." },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer" },
                "apiKeyBasic": { "type": "http", "scheme": "basic", "description": "The API key as the password (any user name): for JSON-RPC clients configured with a URL alone, `http://valet:<API key>@host/v1/paymaster`" }
            },
            "schemas": {
                "Error": object(json!({ "error": { "type": "string" }, "message": { "type": "string" } }), &["error", "message"]),
                "Address": { "type": "string", "pattern": "^0x[0-9a-fA-F]{40}$" },
                "SessionId": { "type": "string", "pattern": "^0x[0-9a-fA-F]{64}$" },
                "Signature": { "type": "string", "pattern": "^0x[0-9a-fA-F]{130}$" },
                "Call": {
                    "type": "object",
                    "properties": {
                        "to": { "type": "string", "description": "An address or a known name" },
                        "value": { "type": "string", "description": "Wei, decimal or 0x" },
                        "data": { "type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$" },
                        "function": { "type": "string", "description": "name(type arg, …)" },
                        "args": { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
                    },
                    "required": ["to"],
                    "additionalProperties": false
                },
                "Session": { "type": "object" },
                "Proposal": {
                    "type": "object",
                    "description": "A session proposed: the owner reads summary (and warnings, if any) and signs typed_data",
                    "properties": {
                        "session_id": { "$ref": "#/components/schemas/SessionId" },
                        "status": { "const": "proposed" },
                        "summary": { "type": "array", "items": { "type": "string" }, "description": "What the session allows, in plain words" },
                        "warnings": { "type": "array", "items": { "type": "string" }, "description": "What the owner should hear before granting, though nothing is refused: a function the target's known ABI does not have, a session longer than 30 days; empty when none" },
                        "digest": { "type": "string" },
                        "typed_data": { "type": "object" },
                        "account_kind": { "enum": ["smart", "eip7702"] },
                        "delegation": { "type": "object", "description": "Of an eip7702 session whose EOA does not delegate to Valet yet: the EIP-7702 authorization the owner signs besides the grant ({chain_id, address, nonce, signing_hash}); its signature goes with the grant as delegation_signature" },
                        "fee_estimate": {
                            "oneOf": [{ "$ref": "#/components/schemas/FeeEstimate" }, { "type": "null" }],
                            "description": "Roughly what the session's operations cost in network fees now, whoever pays them; null when the chain cannot say"
                        }
                    },
                    "required": ["session_id", "status", "summary", "warnings", "digest", "typed_data"]
                },
                "MultichainProposal": multichain_proposal(),
                "FeeEstimate": {
                    "type": "object",
                    "description": "Typical gas (the measured gas table) times the price an operation pays now",
                    "properties": {
                        "gas_price_wei": { "$ref": "#/components/schemas/Wei" },
                        "first_operation_wei": { "allOf": [{ "$ref": "#/components/schemas/Wei" }], "description": "The first operation: creates the account if it is not deployed, enables the session, makes one call" },
                        "later_operation_wei": { "allOf": [{ "$ref": "#/components/schemas/Wei" }], "description": "Each later operation of one call" }
                    },
                    "required": ["gas_price_wei", "first_operation_wei", "later_operation_wei"]
                },
                "AlreadyRevoked": object(json!({
                    "error": { "const": "already_revoked" },
                    "message": { "type": "string" },
                    "session_id": { "$ref": "#/components/schemas/SessionId" },
                    "status": { "const": "revoked" },
                    "onchain": { "enum": ["included", "not_needed", "pending", "voided"], "description": "included: revoked on chain (transaction_hash when known); not_needed: never enabled on chain; pending: the owner's signed revocation is on its way (the service retries); voided: all the account's sessions were revoked" },
                    "transaction_hash": { "type": ["string", "null"] },
                    "revoked_at": { "type": ["integer", "null"], "description": "Unix seconds" }
                }), &["error", "message", "session_id", "status", "onchain", "transaction_hash", "revoked_at"]),
                "Wei": { "type": "string", "pattern": "^[0-9]{1,78}$", "description": "An amount in wei, as a decimal string" },
                "SponsorshipBudget": {
                    "type": "object",
                    "properties": { "daily_budget_wei": { "type": ["string", "null"], "pattern": "^[0-9]{1,78}$", "description": "Wei per UTC day, as a decimal string; null or \"0\": no sponsorship" } },
                    "required": ["daily_budget_wei"],
                    "additionalProperties": false
                },
                "Sponsorship": object(json!({
                    "sponsored": { "type": "boolean", "description": "Whether the service pays this app's operations now (it has a paymaster, and the app a budget)" },
                    "reason": { "type": ["string", "null"], "description": "Why not, when not" },
                    "paymaster": { "oneOf": [{ "$ref": "#/components/schemas/Address" }, { "type": "null" }] },
                    "budget_wei": { "type": ["string", "null"], "description": "The daily budget (null: none)" },
                    "spent_today_wei": { "$ref": "#/components/schemas/Wei" },
                    "reserved_wei": { "$ref": "#/components/schemas/Wei" },
                    "left_wei": { "$ref": "#/components/schemas/Wei" },
                    "day": { "type": "string", "description": "The UTC day, YYYY-MM-DD" },
                    "resets_at": { "type": "integer", "description": "Unix seconds of the next UTC midnight" }
                }), &["sponsored", "budget_wei", "spent_today_wei", "reserved_wei", "left_wei", "day", "resets_at"]),
                "JsonRpcRequest": {
                    "type": "object",
                    "description": "JSON-RPC 2.0: method pm_getPaymasterStubData or pm_getPaymasterData, params [userOp (EntryPoint v0.7, hex quantities), entryPoint, chainId (hex string), context]",
                    "properties": {
                        "jsonrpc": { "const": "2.0" },
                        "id": { "type": ["string", "integer", "null"] },
                        "method": { "type": "string" },
                        "params": { "type": "array" }
                    },
                    "required": ["jsonrpc", "id", "method"],
                    "additionalProperties": false
                },
                "JsonRpcResponse": {
                    "type": "object",
                    "description": "A result ({paymaster, paymasterData, paymasterVerificationGasLimit, paymasterPostOpGasLimit}, and isFinal and sponsor for the stub) or an error: -32601 no such method, -32602 bad params (another entryPoint or chain id, a malformed operation), -32001 the app's budget cannot cover the operation today, -32002 the app's operations are not sponsored, -32603 the service failed (retry)",
                    "properties": {
                        "jsonrpc": { "const": "2.0" },
                        "id": { "type": ["string", "integer", "null"] },
                        "result": { "type": "object" },
                        "error": object(json!({ "code": { "type": "integer" }, "message": { "type": "string" } }), &["code", "message"])
                    },
                    "required": ["jsonrpc", "id"]
                },
                "Execution": object(json!({
                    "execution_id": { "type": "string" }, "session_id": { "type": "string" },
                    "status": { "type": "string", "enum": ["pending", "unknown", "included", "reverted", "refused", "failed"] },
                    "user_op_hash": { "type": ["string", "null"] }, "transaction_hash": { "type": ["string", "null"] },
                    "gas_used": { "type": ["string", "null"] },
                    "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" },
                                "description": "Of an included execution: the logs its operation emitted, in order — those of its calls (an NFT's Transfer, a token's Transfer, …) and of the account and its modules; none of the EntryPoint's, none of other operations in the same transaction. Absent when not known (an execution recorded before they were kept)" }
                }), &["execution_id", "status"]),
                "Event": {
                    "type": "object",
                    "description": "A log: the contract that emitted it, its topics (topics[0] the event's signature hash for a non-anonymous event) and its data",
                    "properties": {
                        "address": { "$ref": "#/components/schemas/Address" },
                        "topics": { "type": "array", "maxItems": 4, "items": { "type": "string", "pattern": "^0x[0-9a-f]{64}$" } },
                        "data": { "type": "string", "pattern": "^0x([0-9a-f]{2})*$" }
                    },
                    "required": ["address", "topics", "data"],
                    "additionalProperties": false
                }
            }
        },
        "security": [{ "apiKey": [] }],
        "paths": {
            "/health": { "get": { "summary": "Readiness: the node answers within 2 s on the expected chain and Valet's contracts are there; what the service is still settling with the chain", "security": [],
                "responses": { "200": json_response("Ready", json!({ "type": "object" })), "503": error_response("Not ready: the node fails, stalls, is on another chain, or lacks the contracts") } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "security": [],
                "responses": { "200": { "description": "Text exposition format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/openapi.json": { "get": { "summary": "This document", "security": [],
                "responses": { "200": json_response("OpenAPI 3.1", json!({ "type": "object" })) } } },
            "/v1/apps": { "post": { "summary": "Register an app (admin token), optionally with a daily sponsorship budget; returns its API key once",
                "requestBody": body(json!({ "type": "object", "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                    "sponsorship": { "$ref": "#/components/schemas/SponsorshipBudget" }
                }, "required": ["name"], "additionalProperties": false })),
                "responses": errors(json!({ "201": json_response("Registered", json!({ "type": "object" })) }), AUTH_ERRORS) } },
            "/v1/apps/{id}/sponsorship": { "put": { "summary": "Set an app's daily sponsorship budget (admin token): the service's paymaster pays the app's operations up to it each UTC day",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } }],
                "requestBody": body(json!({ "$ref": "#/components/schemas/SponsorshipBudget" })),
                "responses": errors(json!({ "200": json_response("The app's sponsorship today", json!({ "$ref": "#/components/schemas/Sponsorship" })) }), &[("400", "Malformed"), ("401", "Not the admin token"), ("404", "No such app")]) } },
            "/v1/sponsorship": { "get": { "summary": "This app's sponsorship today: its daily budget, what its operations spent today (UTC), what is reserved for operations not settled yet, what is left, and the paymaster",
                "responses": errors(json!({ "200": json_response("The app's sponsorship today", json!({ "$ref": "#/components/schemas/Sponsorship" })) }), AUTH_ERRORS) } },
            "/v1/paymaster": { "post": { "summary": "ERC-7677 paymaster service for this app (pm_getPaymasterStubData, pm_getPaymasterData): the service's paymaster approves an operation once its maximum cost is reserved against the app's daily budget",
                "security": [{ "apiKey": [] }, { "apiKeyBasic": [] }],
                "requestBody": body(json!({ "$ref": "#/components/schemas/JsonRpcRequest" })),
                "responses": errors(json!({ "200": json_response("A JSON-RPC result or error", json!({ "$ref": "#/components/schemas/JsonRpcResponse" })) }), &[("400", "Not a JSON-RPC 2.0 request"), ("401", "Missing or unknown API key")]) } },
            "/v1/accounts/{owner}": { "get": { "summary": "An owner's counterfactual account",
                "parameters": [
                    { "name": "owner", "in": "path", "required": true, "schema": { "$ref": "#/components/schemas/Address" } },
                    { "name": "salt", "in": "query", "required": false, "schema": { "type": "string", "pattern": "^[0-9]+$" } },
                    { "name": "kind", "in": "query", "required": false, "description": "smart (a ValetAccount clone, the default) or eip7702 (the owner's EOA itself, delegating to Valet; no salt)", "schema": { "enum": ["smart", "eip7702"] } }
                ],
                "responses": errors(json!({ "200": json_response("The account", json!({ "type": "object" })) }), AUTH_ERRORS) } },
            "/v1/sessions": {
                "post": { "summary": "Propose a session: a fresh key, the summary and the typed data the owner signs",
                    "requestBody": body(json!({ "type": "object", "properties": {
                        "owner": { "$ref": "#/components/schemas/Address" },
                        "salt": { "type": "string", "pattern": "^[0-9]+$" },
                        "spec": { "description": "A TOML spec (string) or a JSON spec (object)", "type": ["string", "object"] },
                        "permission_request": { "description": "Or an ERC-7715-style request: {chainId, permission: {type, data}, rules: [{type, data}]}", "type": "object" },
                        "fees": { "description": "With permission_request: how fees are paid, \"sponsored\" (the default) or {budget, per_period, period, paymasters}", "type": ["string", "object"] },
                        "names": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Address" } },
                        "account_kind": { "description": "smart (the default) or eip7702: the session acts for the owner's EOA itself, which delegates to Valet (EIP-7702); the proposal then carries the delegation to sign", "enum": ["smart", "eip7702"] },
                        "chains": { "description": "One grant, several chains: the chain ids to propose the session on (distinct, each served by this service, at most 32; smart accounts only), granted with one owner signature; the answer is a MultichainProposal. Absent: the main chain only", "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1, "maxItems": 32, "uniqueItems": true }
                    }, "required": ["owner"], "additionalProperties": false })),
                    "responses": errors(json!({ "201": json_response("Proposed: one chain (Proposal), or several with chains (MultichainProposal)", json!({ "oneOf": [{ "$ref": "#/components/schemas/Proposal" }, { "$ref": "#/components/schemas/MultichainProposal" }] })) }), &[("400", "Malformed request, or a chain this service does not serve (chain_not_served)"), ("401", "Missing or unknown API key"), ("409", "An EOA that must be upgraded before a bundler can serve it (upgrade_required)")]) },
                "get": { "summary": "This app's sessions with what is left",
                    "parameters": [{ "name": "account", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/Address" } }],
                    "responses": errors(json!({ "200": json_response("Sessions", json!({ "type": "object" })) }), AUTH_ERRORS) }
            },
            "/v1/sessions/{id}": { "get": { "summary": "A session with what is left, read from the chain",
                "parameters": [session_id_param()],
                "responses": errors(json!({ "200": json_response("The session", json!({ "$ref": "#/components/schemas/Session" })) }), &[("400", "Malformed id"), ("401", "Unauthorized"), ("404", "No such session for this app")]) } },
            "/v1/sessions/{id}/grant": { "post": { "summary": "The owner's EIP-712 grant signature",
                "parameters": [session_id_param()],
                "requestBody": body(json!({ "type": "object", "properties": {
                    "signature": { "$ref": "#/components/schemas/Signature" },
                    "delegation_signature": { "description": "Of an eip7702 session whose EOA does not delegate to Valet yet: the owner EOA's signature of the proposal's delegation.signing_hash", "$ref": "#/components/schemas/Signature" }
                }, "required": ["signature"], "additionalProperties": false })),
                "responses": errors(json!({ "200": json_response("Active", json!({ "type": "object" })) }), &[("400", "Malformed, or the delegation missing (delegation_required) or not the owner's"), ("401", "Unauthorized"), ("403", "Not the owner's signature"), ("404", "No such session"), ("409", "Not waiting for a grant (of a multichain grant: one of its sessions is not; nothing is granted)")]) } },
            "/v1/sessions/{id}/execute": { "post": { "summary": "Execute calls within the session (pre-flighted; idempotent with Idempotency-Key)",
                "parameters": [session_id_param(), { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "minLength": 1, "maxLength": 200 } }],
                "requestBody": body(json!({ "type": "object", "properties": { "calls": { "type": "array", "minItems": 1, "maxItems": 32, "items": { "$ref": "#/components/schemas/Call" } } }, "required": ["calls"], "additionalProperties": false })),
                "responses": errors(json!({ "200": json_response("Included", json!({ "$ref": "#/components/schemas/Execution" })), "202": json_response("Outcome unknown: it may have reached the chain; follow GET /v1/executions/{id} (Location) or retry with the same Idempotency-Key", json!({ "$ref": "#/components/schemas/Execution" })) }), &[("400", "Malformed"), ("401", "Unauthorized"), ("404", "No such session"), ("402", "Sponsored, and the app's daily sponsorship budget cannot cover the operation's maximum cost (sponsorship_budget_exceeded, with budget_wei, left_wei and max_cost_wei), or its sponsorship ended meanwhile (not_sponsored); nothing was sent"), ("409", "Revoked, not granted, or in progress"), ("422", "Refused before sending, with the reason; or rejected by the chain"), ("502", "The bundler failed (retry)"), ("503", "The node failed before anything was sent (retry)")]) } },
            "/v1/executions/{id}": { "get": { "summary": "One execution as the service knows it; an unknown one is looked up on chain every few seconds until it is included or provably never will be",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "maxLength": 100 } }],
                "responses": errors(json!({ "200": json_response("The execution (its status: pending, unknown, included, reverted, refused or failed)", json!({ "$ref": "#/components/schemas/Execution" })) }), &[("400", "Malformed id"), ("401", "Unauthorized"), ("404", "No such execution for this app")]) } },
            "/v1/sessions/{id}/revoke": { "post": { "summary": "Stop the session in the service at once; returns what the owner signs to revoke it on chain",
                "parameters": [session_id_param()],
                "responses": errors(json!({ "200": json_response("Revoked in the service; onchain holds what the owner signs", json!({ "type": "object" })), "409": json_response("Already revoked on chain, or its revocation is on its way: nothing to sign (when and which transaction)", json!({ "$ref": "#/components/schemas/AlreadyRevoked" })) }), &[("400", "Malformed"), ("401", "Unauthorized"), ("404", "No such session")]) } },
            "/v1/sessions/{id}/revoke/onchain": { "post": { "summary": "Submit the owner's signed revocation",
                "parameters": [session_id_param()],
                "requestBody": body(json!({ "type": "object", "properties": { "signature": { "$ref": "#/components/schemas/Signature" } }, "required": ["signature"], "additionalProperties": false })),
                "responses": errors(json!({ "200": json_response("Revoked on chain (onchain: included), or no transaction needed (onchain: not_needed: never enabled on chain)", json!({ "type": "object" })), "202": json_response("Revoked in the service, not on chain yet (onchain: pending): the service retries until it is", json!({ "type": "object" })), "409": json_response("Already revoked on chain: nothing was sent (already_revoked, when and which transaction); or this service has no relayer (no_relayer)", json!({ "anyOf": [{ "$ref": "#/components/schemas/AlreadyRevoked" }, { "$ref": "#/components/schemas/Error" }] })) }), &[("400", "Malformed"), ("401", "Unauthorized"), ("403", "Not the owner's signature"), ("404", "No such session"), ("422", "Rejected by the chain")]) } },
            "/v1/sessions/{id}/schedules": {
                "post": { "summary": "Run calls within the session every period, by the chain's clock",
                    "parameters": [session_id_param()],
                    "requestBody": body(json!({ "type": "object", "properties": {
                        "calls": { "type": "array", "minItems": 1, "maxItems": 32, "items": { "$ref": "#/components/schemas/Call" } },
                        "every": { "description": "\"1d\", \"12h\", \"90s\" or seconds", "type": ["string", "integer"] },
                        "start_at": { "type": "integer", "minimum": 0 },
                        "max_runs": { "type": "integer", "minimum": 1 }
                    }, "required": ["calls", "every"], "additionalProperties": false })),
                    "responses": errors(json!({ "201": json_response("Scheduled", json!({ "type": "object" })) }), &[("400", "Malformed"), ("401", "Unauthorized"), ("404", "No such session"), ("409", "Session not active")]) },
                "get": { "summary": "The session's schedules",
                    "parameters": [session_id_param()],
                    "responses": errors(json!({ "200": json_response("Schedules", json!({ "type": "object" })) }), &[("400", "Malformed id"), ("401", "Unauthorized"), ("404", "No such session")]) }
            },
            "/v1/schedules/{id}": { "delete": { "summary": "Cancel a schedule",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } }],
                "responses": errors(json!({ "200": json_response("Cancelled", json!({ "type": "object" })) }), &[("400", "Malformed id"), ("401", "Unauthorized"), ("404", "No active schedule by that id")]) } },
            "/v1/devnet/fund": { "post": { "summary": "Top an account up with test ETH (unless eth is false: a sponsored account needs none) and demo tokens (development chains only)",
                "requestBody": body(json!({ "type": "object", "properties": { "address": { "$ref": "#/components/schemas/Address" }, "eth": { "type": "boolean", "default": true } }, "required": ["address"], "additionalProperties": false })),
                "responses": errors(json!({ "200": json_response("Funded (or already had enough)", json!({ "type": "object" })) }), &[("400", "Malformed, or the zero address"), ("401", "Unauthorized"), ("409", "Not a development chain"), ("422", "The chain refused the transfer"), ("503", "The node failed")]) } },
            "/rpc": { "post": { "summary": "The devnet's node, on the dApp's origin (valet up only): one JSON-RPC 2.0 request, its read methods only; always a JSON-RPC result or error", "security": [],
                "requestBody": json_rpc_body(),
                "responses": { "200": json_response("A JSON-RPC answer", json!({ "type": "object" })), "404": error_response("Not a devnet") } } },
            "/bundler": { "post": { "summary": "The devnet's ERC-4337 bundler, on the dApp's origin (valet up only): one JSON-RPC 2.0 request; always a JSON-RPC result or error", "security": [],
                "requestBody": json_rpc_body(),
                "responses": { "200": json_response("A JSON-RPC answer", json!({ "type": "object" })), "404": error_response("Not a devnet") } } },
            "/config.json": { "get": { "summary": "The dApp's configuration (when the service serves the dApp)", "security": [],
                "responses": { "200": json_response("Configuration", json!({ "type": "object" })), "404": error_response("The dApp is not served") } } },
            "/v1/audit": { "get": { "summary": "This app's audit log",
                "parameters": [
                    { "name": "account", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/Address" } },
                    { "name": "session_id", "in": "query", "required": false, "schema": { "$ref": "#/components/schemas/SessionId" } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }
                ],
                "responses": errors(json!({ "200": json_response("Events", json!({ "type": "object" })) }), AUTH_ERRORS) } }
        }
    })
}

/// The answer to `POST /v1/sessions` with `chains`: one grant, several chains.
fn multichain_proposal() -> Value {
    json!({
        "type": "object",
        "description": "A session proposed on each chain of `chains`, granted by one owner signature over typed_data (MultichainGrant(ChainGrant[]): no chain id in its domain); POST /v1/sessions/{id}/grant on any of its sessions with that signature activates them all",
        "properties": {
            "grant_id": { "type": "string", "description": "The grant's id: the multichain digest the owner signs" },
            "status": { "const": "proposed" },
            "account_kind": { "const": "smart" },
            "owner": { "$ref": "#/components/schemas/Address" },
            "digest": { "type": "string" },
            "typed_data": { "type": "object" },
            "summary": { "type": "array", "items": { "type": "string" }, "description": "Which chains, then each chain's session in plain words" },
            "sessions": { "type": "array", "description": "One session per chain, in the order signed", "items": {
                "type": "object",
                "properties": {
                    "chain_id": { "type": "integer" },
                    "chain_name": { "type": "string" },
                    "session_id": { "$ref": "#/components/schemas/SessionId" },
                    "account": { "$ref": "#/components/schemas/Address" },
                    "account_deployed": { "type": "boolean" },
                    "session_key": { "$ref": "#/components/schemas/Address" },
                    "valid_after": { "type": "integer" },
                    "valid_until": { "type": "integer" },
                    "summary": { "type": "array", "items": { "type": "string" } },
                    "warnings": { "type": "array", "items": { "type": "string" } },
                    "fee_estimate": { "oneOf": [{ "$ref": "#/components/schemas/FeeEstimate" }, { "type": "null" }] }
                },
                "required": ["chain_id", "session_id", "account", "session_key", "summary"]
            } }
        },
        "required": ["grant_id", "status", "digest", "typed_data", "summary", "sessions"]
    })
}
