//! `px fund <token> <amount>`: adds PXToken from the wallet to a token's escrow on the
//! StorageMarket (approving the market first when the allowance is short). The escrow pays
//! the token's deals with providers; anyone may fund any token.

use alloy::primitives::U256;
use serde_json::json;

use super::units;
use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Token id.
    token: u64,
    /// PX to add, with up to 18 decimals (`25`, `2.5`, `0.000001`).
    #[arg(value_parser = parse_px)]
    amount: U256,
}

pub(crate) async fn run(a: Args, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let escrow = client.fund_escrow(a.token, a.amount).await?;
    output::emit(
        s.json,
        &json!({ "token": a.token, "funded": a.amount.to_string(), "escrow": escrow.to_string() }),
        || {
            outln!(
                "funded token {} with {}; its escrow is now {}",
                a.token,
                units(a.amount, "PX"),
                units(escrow, "PX")
            );
        },
    );
    Ok(())
}

/// PXToken decimals.
const DECIMALS: usize = 18;

/// A PX amount with up to 18 decimals (`25`, `2.5`, `0.5 PX`, zero allowed), in wei.
pub(super) fn px_wei(s: &str) -> Result<U256, String> {
    let t = s.trim();
    let t = t.strip_suffix("PX").map_or(t, str::trim_end);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(format!("{s:?} is not an amount of PX (e.g. 25 or 2.5)"));
    }
    if frac.len() > DECIMALS {
        return Err(format!("{s:?} has more than {DECIMALS} decimals"));
    }
    let wei = format!("{int}{frac:0<DECIMALS$}");
    U256::from_str_radix(&wei, 10).map_err(|_| format!("{s:?} is too large"))
}

/// A positive PX amount with up to 18 decimals, in wei.
fn parse_px(s: &str) -> Result<U256, String> {
    let v = px_wei(s)?;
    if v.is_zero() {
        return Err("the amount must be positive".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei(s: &str) -> U256 {
        s.parse().unwrap()
    }

    #[test]
    fn px_amounts_parse_to_wei() {
        assert_eq!(parse_px("25").unwrap(), wei("25000000000000000000"));
        assert_eq!(parse_px("2.5").unwrap(), wei("2500000000000000000"));
        assert_eq!(parse_px(" 2.5 PX").unwrap(), wei("2500000000000000000"));
        assert_eq!(parse_px(".5").unwrap(), wei("500000000000000000"));
        assert_eq!(parse_px("3.").unwrap(), wei("3000000000000000000"));
        assert_eq!(parse_px("0.000000000000000001").unwrap(), U256::from(1));
        assert_eq!(parse_px("007").unwrap(), wei("7000000000000000000"));
    }

    #[test]
    fn bad_px_amounts_are_refused() {
        for bad in [
            "", ".", "-1", "+1", "1e18", "2,5", "1.2.3", "abc", "0x10", "1 000",
        ] {
            assert!(parse_px(bad).is_err(), "{bad:?}");
        }
        assert!(parse_px("0").unwrap_err().contains("positive"));
        assert!(parse_px("0.0").is_err());
        assert!(
            parse_px("1.0000000000000000001")
                .unwrap_err()
                .contains("decimals")
        );
        // Beyond 2^256 wei.
        assert!(parse_px(&"9".repeat(80)).unwrap_err().contains("too large"));
    }

    #[test]
    fn fund_takes_token_and_amount() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let c = Cli::try_parse_from(["px", "3", "2.5"]).unwrap();
        assert_eq!(c.args.token, 3);
        assert_eq!(c.args.amount, wei("2500000000000000000"));
        assert!(Cli::try_parse_from(["px", "3", "-2"]).is_err());
        assert!(Cli::try_parse_from(["px", "3"]).is_err());
    }
}
