//! `px providers`: the provider registry.
//!
//! Every listed provider (exited ones excepted) with its endpoint, region, capacity and free
//! bytes, price per GiB-month, certification, stake, and the periods it proved and missed:
//! counted from the StorageMarket's `StorageProven` and `PeriodMissed` events of its deals
//! since the deployment's start block (each deal's provider from its `DealOpened` event).

use alloy::primitives::U256;
use px_sdk::client::human_bytes;

use super::units;
use crate::{
    config::Settings,
    output::{self, outln},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_: Args, s: &Settings) -> eyre::Result<()> {
    let providers = s.client().await?.providers().await?;
    output::emit(s.json, &providers, || {
        if providers.is_empty() {
            outln!("no providers registered");
            return;
        }
        outln!(
            "{:<42} {:>6} {:>10} {:>10} {:>14} {:<9} {:>12} {:>6} {:>6}  ENDPOINT",
            "PROVIDER",
            "REGION",
            "CAPACITY",
            "FREE",
            "PRICE/GiB-MO",
            "STATE",
            "STAKE",
            "PROVEN",
            "MISSED"
        );
        let px = |wei: &str| {
            wei.parse::<U256>()
                .map_or_else(|_| format!("{wei} wei"), |v| units(v, "PX"))
        };
        for p in &providers {
            let state = if p.exiting {
                "exiting"
            } else if p.paused {
                "paused"
            } else if !p.active {
                "inactive"
            } else if p.certified {
                "certified"
            } else {
                "active"
            };
            outln!(
                "{:<42} {:>6} {:>10} {:>10} {:>14} {:<9} {:>12} {:>6} {:>6}  {}",
                p.address,
                p.region,
                human_bytes(p.capacity),
                human_bytes(p.free()),
                px(&p.price_per_gib_month),
                state,
                px(&p.stake),
                p.proofs,
                p.missed,
                // The endpoint is the provider's own word: no terminal escapes may pass.
                output::escape_name(&p.endpoint)
            );
        }
    });
    Ok(())
}
