//! `px plans`

use px_sdk::client::human_bytes;

use super::units;
use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_: Args, s: &Settings) -> eyre::Result<()> {
    let plans = s.client().await?.plans().await?;
    output::emit(s.json, &plans, || {
        outln!(
            "{:<4} {:>10} {:>10}  {:<7} PRICE",
            "ID",
            "QUOTA",
            "VALIDITY",
            "ACTIVE"
        );
        for p in &plans {
            let validity = if p.validity == 0 {
                "forever".to_string()
            } else {
                format!("{} days", p.validity / 86_400)
            };
            let mut prices = Vec::new();
            if p.free {
                prices.push("free (once per address)".to_string());
            }
            if !p.token_price.is_zero() {
                prices.push(units(p.token_price, "PX"));
            }
            if !p.native_price.is_zero() {
                prices.push(units(p.native_price, "ETH"));
            }
            outln!(
                "{:<4} {:>10} {:>10}  {:<7} {}",
                p.id,
                human_bytes(p.quota),
                validity,
                if p.mintable { "yes" } else { "no" },
                prices.join(" or ")
            );
        }
    });
    Ok(())
}
