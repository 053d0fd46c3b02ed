//! Human and JSON output.

use serde::Serialize;

/// Prints `value` as JSON (`--json`) or runs `human`.
pub(crate) fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("serializable output")
        );
    } else {
        human();
    }
}

/// Prints an error: `error: ...` for people, `{"error": ...}` on stdout with `--json`.
pub(crate) fn error(json: bool, e: &eyre::Report) {
    if json {
        let code = e
            .downcast_ref::<px_sdk::Error>()
            .map(error_kind)
            .unwrap_or("error");
        println!(
            "{}",
            serde_json::json!({ "error": code, "message": format!("{e:#}") })
        );
    } else {
        eprintln!("error: {e:#}");
    }
}

/// A stable machine-readable name of an SDK error.
fn error_kind(e: &px_sdk::Error) -> &'static str {
    use px_sdk::{Error as E, crypto::CryptoError};
    match e {
        E::Config(_) => "config",
        E::Transport(_) => "rpc",
        E::Contract(_) => "contract",
        E::Reverted { .. } => "reverted",
        E::PendingTransaction(_) => "pending_transaction",
        E::TransactionFailed { .. } => "transaction_failed",
        E::UnexpectedChainAnswer(_) => "unexpected_chain_answer",
        E::NoSuchPlan(_) => "no_such_plan",
        E::NoSuchToken(_) => "no_such_token",
        E::NotOwner { .. } => "not_owner",
        E::GateClosed { .. } => "gate_closed",
        E::SyncFailed { .. } => "sync_failed",
        E::SyncNotAllowed { .. } => "sync_not_allowed",
        E::Timeout(..) => "timeout",
        E::Node { .. } => "node",
        E::Http(_) => "http",
        E::NodeMismatch(_) => "node_mismatch",
        E::NoNode => "no_node",
        E::ForeignSignIn { .. } => "foreign_sign_in",
        E::Crypto(CryptoError::WrongKey { .. }) => "wrong_key",
        E::Crypto(CryptoError::Corrupt(_)) => "corrupt",
        E::Crypto(_) => "crypto",
        E::NondeterministicSigner { .. } => "nondeterministic_signer",
        E::HashMismatch { .. } => "hash_mismatch",
        E::FileNotFound { .. } => "file_not_found",
        E::Signing(_) => "signing",
        E::Io(_) => "io",
        _ => "error",
    }
}
