//! Human and JSON output, and what a failure's exit code says.
//!
//! Standard output may be a pipe that closes early (`px ls 1 | head`): [`outln!`] writes with
//! errors ignored instead of `println!`'s panic, and SIGPIPE stays ignored (Rust's default) so
//! that a storage node closing an upload's connection can never kill `px` silently.

use std::io::Write;

use serde::Serialize;

/// `println!` for standard output that ignores a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to standard output; a closed pipe or full disk is ignored (the command's
/// outcome, not its output, decides the exit code).
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Prints `value` as JSON (`--json`) or runs `human`.
pub(crate) fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce()) {
    if json {
        outln!(
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
            .or_else(|| e.downcast_ref::<px_sdk::NetworkError>().map(network_kind))
            .or_else(|| e.downcast_ref::<Usage>().map(|_| "usage"))
            .unwrap_or("error");
        outln!(
            "{}",
            serde_json::json!({ "error": code, "message": format!("{e:#}"), "exitCode": exit_code(e) })
        );
    } else {
        eprintln!("error: {e:#}");
    }
}

/// A mistake in the command line or the settings (exit code [`Exit::Usage`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// A usage error as a report.
pub(crate) fn usage(msg: impl Into<String>) -> eyre::Report {
    Usage(msg.into()).into()
}

/// Exit codes by class of failure (documented in `px --help` and cli/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// Any other failure.
    Failure = 1,
    /// Bad arguments or settings (also clap's code for a bad command line).
    Usage = 2,
    /// Refused: the on-chain gate, the contract or the storage node said no (uploads locked,
    /// over quota, not the owner, sync not allowed yet).
    Refused = 3,
    /// No such token, plan or file.
    NotFound = 4,
    /// The chain or the storage node could not be reached, timed out or broke the connection.
    Network = 5,
    /// Verification failed: wrong key, corrupt or tampered content, a swapped name, content
    /// not encrypted where it must be, another CID or hash than expected.
    Verification = 6,
}

/// The text of `px --help`'s exit code section.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other failure
  2  usage: bad arguments or settings (missing wallet, deployment or node URL)
  3  refused: the on-chain gate, the contract or the storage node said no
     (uploads locked, over quota, not the owner, sync not allowed yet)
  4  not found: no such token, plan or file
  5  network: the chain or the storage node unreachable, timed out, or the
     connection broke (an interrupted upload the node gave no reason for)
  6  verification: wrong key, corrupt or tampered content, a name bound to
     another file, unencrypted content where encryption is expected, or
     another CID or hash than expected";

/// The exit code of a failed command.
pub(crate) fn exit_code(e: &eyre::Report) -> u8 {
    let class = if let Some(e) = e.downcast_ref::<px_sdk::Error>() {
        sdk_class(e)
    } else if let Some(e) = e.downcast_ref::<px_sdk::NetworkError>() {
        network_class(e)
    } else if e.downcast_ref::<Usage>().is_some() {
        Exit::Usage
    } else if e.downcast_ref::<px_sdk::crypto::CryptoError>().is_some()
        || e.downcast_ref::<px_sdk::deployment::DeploymentError>()
            .is_some()
    {
        // Key files and deployment files named in the settings.
        Exit::Usage
    } else if e
        .downcast_ref::<alloy::transports::TransportError>()
        .is_some()
    {
        Exit::Network
    } else {
        Exit::Failure
    };
    class as u8
}

fn sdk_class(e: &px_sdk::Error) -> Exit {
    use px_sdk::{Error as E, api::ErrorCode, crypto::CryptoError};
    match e {
        E::Config(_) | E::NoNode => Exit::Usage,
        E::Transport(_) | E::PendingTransaction(_) | E::Timeout(..) | E::Http(_) => Exit::Network,
        E::UploadInterrupted(_) | E::RateLimited { .. } => Exit::Network,
        E::Reverted { .. } | E::NotOwner { .. } | E::GateClosed { .. } => Exit::Refused,
        E::SyncNotAllowed { .. } => Exit::Refused,
        E::NoSuchPlan(_) | E::NoSuchToken(_) | E::FileNotFound { .. } => Exit::NotFound,
        E::Node { status, code, .. } => match code {
            Some(ErrorCode::NotFound) => Exit::NotFound,
            // Retry later: a backend outage, a rate limit, a request or body too slow.
            Some(ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::Timeout) => {
                Exit::Network
            }
            Some(ErrorCode::Internal) => Exit::Failure,
            _ if *status == 404 => Exit::NotFound,
            _ if *status >= 500 => Exit::Network,
            _ => Exit::Refused,
        },
        E::NodeMismatch(_) | E::ForeignSignIn { .. } | E::HashMismatch { .. } => Exit::Verification,
        E::Unencrypted { .. } => Exit::Verification,
        E::Crypto(CryptoError::WrongKey { .. } | CryptoError::Corrupt(_)) => Exit::Verification,
        _ => Exit::Failure,
    }
}

fn network_class(e: &px_sdk::NetworkError) -> Exit {
    use px_sdk::{NetworkError as N, crypto::CryptoError};
    match e {
        N::Client(e) => sdk_class(e),
        N::NotHomeNode { .. } | N::EscrowTooLow { .. } | N::NotEnoughProviders { .. } => {
            Exit::Refused
        }
        N::NotNetworkFile { .. } => Exit::NotFound,
        N::PieceNotStored { .. } | N::NotEnoughPieces { .. } => Exit::Network,
        N::Crypto(CryptoError::WrongKey { .. } | CryptoError::Corrupt(_)) => Exit::Verification,
        N::Protocol(_) | N::Placement { .. } => Exit::Verification,
        _ => Exit::Failure,
    }
}

/// A stable machine-readable name of a provider-network error.
fn network_kind(e: &px_sdk::NetworkError) -> &'static str {
    use px_sdk::NetworkError as N;
    match e {
        N::Client(e) => error_kind(e),
        N::NotHomeNode { .. } => "not_home_node",
        N::EscrowTooLow { .. } => "escrow_too_low",
        N::NotEnoughProviders { .. } => "not_enough_providers",
        N::NotNetworkFile { .. } => "not_network_file",
        N::PieceNotStored { .. } => "piece_not_stored",
        N::NotEnoughPieces { .. } => "not_enough_pieces",
        N::Placement { .. } => "bad_placement",
        N::Protocol(_) => "bad_manifest",
        N::Crypto(_) => "crypto",
        _ => "network",
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
        E::RateLimited { .. } => "rate_limited",
        E::Http(_) => "http",
        E::UploadInterrupted(_) => "upload_interrupted",
        E::NodeMismatch(_) => "node_mismatch",
        E::NoNode => "no_node",
        E::ForeignSignIn { .. } => "foreign_sign_in",
        E::Crypto(CryptoError::WrongKey { .. }) => "wrong_key",
        E::Crypto(CryptoError::Corrupt(_)) => "corrupt",
        E::Crypto(_) => "crypto",
        E::NondeterministicSigner { .. } => "nondeterministic_signer",
        E::HashMismatch { .. } => "hash_mismatch",
        E::Unencrypted { .. } => "unencrypted",
        E::FileNotFound { .. } => "file_not_found",
        E::Signing(_) => "signing",
        E::Io(_) => "io",
        _ => "error",
    }
}

/// Which way pieces go, for the words of [`PieceProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Pieces sent to providers.
    Upload,
    /// Pieces fetched from providers.
    Download,
}

/// Per-piece progress of a provider-network transfer: on a terminal, one bar per piece in
/// flight (cleared when it ends) above a bar of the pieces done; otherwise one plain line per
/// piece that ends, on standard error. Nothing in JSON mode.
pub(crate) struct PieceProgress {
    direction: Direction,
    multi: Option<indicatif::MultiProgress>,
    total: Option<indicatif::ProgressBar>,
    bars: std::sync::Mutex<
        std::collections::HashMap<(u32, u16, alloy::primitives::Address), indicatif::ProgressBar>,
    >,
}

impl PieceProgress {
    /// A display, or `None` in JSON mode.
    pub(crate) fn new(json: bool, direction: Direction) -> Option<std::sync::Arc<Self>> {
        use std::io::IsTerminal;
        if json {
            return None;
        }
        let (multi, total) = if std::io::stderr().is_terminal() {
            let multi = indicatif::MultiProgress::new();
            let total = multi.add(indicatif::ProgressBar::new(0));
            total.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} pieces, {elapsed}")
                    .expect("valid template"),
            );
            total.set_message(match direction {
                Direction::Upload => "stored",
                Direction::Download => "fetched",
            });
            total.enable_steady_tick(std::time::Duration::from_millis(200));
            (Some(multi), Some(total))
        } else {
            (None, None)
        };
        Some(std::sync::Arc::new(Self {
            direction,
            multi,
            total,
            bars: Default::default(),
        }))
    }

    /// The SDK observer feeding this display.
    pub(crate) fn observer(self: &std::sync::Arc<Self>) -> px_sdk::network::PieceObserver {
        let me = self.clone();
        std::sync::Arc::new(move |e| me.event(e))
    }

    fn event(&self, e: &px_sdk::network::PieceEvent) {
        use px_sdk::network::PieceStage;
        let key = (e.segment, e.piece, e.provider);
        let who = format!(
            "segment {} piece {} {} {}",
            e.segment,
            e.piece,
            match self.direction {
                Direction::Upload => "->",
                Direction::Download => "<-",
            },
            e.provider
        );
        let mut bars = self.bars.lock().expect("not poisoned");
        match e.stage {
            PieceStage::Started { size } => {
                if let Some(multi) = &self.multi {
                    let bar = multi.insert_from_back(1, indicatif::ProgressBar::new(size));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "  {prefix} {bytes:>10}/{total_bytes:<10} {bar:24} {bytes_per_sec}",
                        )
                        .expect("valid template"),
                    );
                    bar.set_prefix(who);
                    bars.insert(key, bar);
                }
            }
            PieceStage::Progress { bytes } => {
                if let Some(bar) = bars.get(&key) {
                    bar.set_position(bytes);
                }
            }
            stage => {
                let word = match (stage, self.direction) {
                    (PieceStage::Done, Direction::Upload) => "stored",
                    (PieceStage::Done, Direction::Download) => "good",
                    (PieceStage::Failed, _) => "failed",
                    _ => "cancelled",
                };
                if let Some(bar) = bars.remove(&key) {
                    bar.finish_and_clear();
                    if let Some(multi) = &self.multi {
                        multi.remove(&bar);
                    }
                }
                if matches!(stage, PieceStage::Done)
                    && let Some(total) = &self.total
                {
                    total.inc(1);
                }
                match &self.multi {
                    // Failures stay visible above the bars.
                    Some(multi) if matches!(stage, PieceStage::Failed) => {
                        let _ = multi.println(format!("{who}: {word}"));
                    }
                    Some(_) => {}
                    None => eprintln!("{who}: {word}"),
                }
            }
        }
    }

    /// Clears the bars.
    pub(crate) fn finish(&self) {
        for (_, bar) in self.bars.lock().expect("not poisoned").drain() {
            bar.finish_and_clear();
        }
        if let Some(total) = &self.total {
            total.finish_and_clear();
        }
    }
}

/// `name` with control characters (and the Unicode bidi overrides that reorder a terminal
/// line) escaped, so a name the node supplies cannot drive the terminal.
pub(crate) fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        if c.is_control() || bidi || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_drive_the_terminal() {
        let evil = "a\u{1b}]0;pwned\u{7}\u{1b}[2Jb\r\nc\u{202e}txt.exe\\";
        let shown = escape_name(evil);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "a\\u{1b}]0;pwned\\u{7}\\u{1b}[2Jb\\r\\nc\\u{202e}txt.exe\\\\"
        );
        assert_eq!(escape_name("ünïcode report.pdf"), "ünïcode report.pdf");
    }
}
