//! `px provider …`: a storage provider's own listing in the ProviderRegistry and its earnings
//! in the StorageMarket, with the wallet of the settings as the provider's account (the key a
//! `px-node --role provider` runs with).
//!
//! `register` checks the endpoint, the stake against the registry's `minStake` and the wallet's
//! PXToken balance, approves the registry when the allowance is short, then
//! `registerProvider`; `update` (`updateListing`, unchanged fields kept), `stake` (`addStake`),
//! `pause`/`resume` (`setPaused`), `exit` (`requestExit`), `withdraw` (`withdrawStake`),
//! `status` (the listing and the claimable earnings) and `claim` (`claimEarnings`). A refusal
//! of the contracts (already registered, stake too low, still bonded, active deals, nothing to
//! claim) is the contract's own revert, said in words, and exits with code 3.

use alloy::{
    contract::CallBuilder,
    network::Ethereum,
    primitives::{
        Address, U256,
        aliases::{U40, U96},
    },
    providers::Provider,
    rpc::types::TransactionReceipt,
    sol_types::{SolEventInterface, SolInterface},
};
use px_sdk::{
    Client, Revert,
    client::{human_bytes, human_duration},
    contracts::{
        IProviderRegistry::Listing,
        PXToken,
        ProviderRegistry::{self, ProviderRegistryErrors, ProviderRegistryEvents},
        StorageMarket::{self, StorageMarketErrors, StorageMarketEvents},
    },
};
use serde::Serialize;
use serde_json::json;

use super::units;
use crate::{
    config::Settings,
    output::{self, outln, usage},
};

/// `px provider` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Register the wallet as a provider: list an endpoint, capacity and price, stake PX.
    Register(RegisterArgs),
    /// Change the listing's endpoint, region, capacity or price (others kept).
    Update(UpdateArgs),
    /// Add PX to the stake.
    Stake(StakeArgs),
    /// Pause the listing: no new deals (held deals continue).
    Pause,
    /// Resume a paused listing.
    Resume,
    /// Leave the registry: no new deals; the stake unbonds after the registry's delay.
    Exit,
    /// Withdraw the stake once it has unbonded and no deal is active.
    Withdraw,
    /// Show a provider's listing and claimable earnings [default: the wallet's].
    Status(StatusArgs),
    /// Claim the earnings the market holds for the wallet.
    Claim,
}

/// `px provider register`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegisterArgs {
    /// Base URL clients reach the provider node at (http:// or https://).
    #[arg(long, value_parser = parse_endpoint)]
    endpoint: String,
    /// Bytes offered: a number with an optional unit (`10GiB`, `500MiB`, `1.5TiB`, `2TB`).
    #[arg(long, value_parser = parse_bytes)]
    capacity: u64,
    /// Price in PX per GiB-month, with up to 18 decimals (`0.5`; `0` stores for free).
    #[arg(long, value_parser = parse_price)]
    price: u128,
    /// PX staked (at least the registry's minimum stake).
    #[arg(long, value_parser = parse_stake)]
    stake: U96,
    /// Region code (0: none).
    #[arg(long, default_value_t = 0)]
    region: u16,
}

/// `px provider update`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub(crate) struct UpdateArgs {
    /// New base URL (http:// or https://).
    #[arg(long, value_parser = parse_endpoint, group = "change")]
    endpoint: Option<String>,
    /// New capacity (`10GiB` style).
    #[arg(long, value_parser = parse_bytes, group = "change")]
    capacity: Option<u64>,
    /// New price in PX per GiB-month.
    #[arg(long, value_parser = parse_price, group = "change")]
    price: Option<u128>,
    /// New region code.
    #[arg(long, group = "change")]
    region: Option<u16>,
}

/// `px provider stake`.
#[derive(Debug, clap::Args)]
pub(crate) struct StakeArgs {
    /// PX to add, with up to 18 decimals.
    #[arg(value_parser = parse_stake)]
    amount: U96,
}

/// `px provider status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Provider address [default: the wallet's].
    address: Option<Address>,
}

pub(crate) async fn run(c: Command, s: &Settings) -> eyre::Result<()> {
    let client = s.client().await?;
    let p = Chain::new(&client)?;
    match c {
        Command::Register(a) => register(&p, a, s.json).await,
        Command::Update(a) => update(&p, a, s.json).await,
        Command::Stake(a) => stake(&p, a.amount, s.json).await,
        Command::Pause => set_paused(&p, true, s.json).await,
        Command::Resume => set_paused(&p, false, s.json).await,
        Command::Exit => exit(&p, s.json).await,
        Command::Withdraw => withdraw(&p, s.json).await,
        Command::Status(a) => status(&p, a.address.unwrap_or(p.me), s.json).await,
        Command::Claim => claim(&p, s.json).await,
    }
}

/// The contracts a provider deals with, through the wallet's client.
struct Chain<'a> {
    client: &'a Client,
    me: Address,
    registry: Address,
    market: Address,
}

impl<'a> Chain<'a> {
    fn new(client: &'a Client) -> eyre::Result<Self> {
        let d = client.deployment();
        let none = || usage("the deployment has no provider network (no ProviderRegistry)");
        Ok(Self {
            client,
            me: client.address(),
            registry: d.provider_registry.ok_or_else(none)?,
            market: d.storage_market.ok_or_else(none)?,
        })
    }

    fn registry(
        &self,
    ) -> ProviderRegistry::ProviderRegistryInstance<&'a alloy::providers::DynProvider> {
        ProviderRegistry::new(self.registry, self.client.provider())
    }

    fn market(&self) -> StorageMarket::StorageMarketInstance<&'a alloy::providers::DynProvider> {
        StorageMarket::new(self.market, self.client.provider())
    }

    fn token(&self) -> PXToken::PXTokenInstance<&'a alloy::providers::DynProvider> {
        PXToken::new(self.client.deployment().px_token, self.client.provider())
    }

    async fn listing(&self, who: Address) -> eyre::Result<Listing> {
        Ok(self
            .registry()
            .providerOf(who)
            .call()
            .await
            .map_err(px_sdk::Error::from)?)
    }

    async fn chain_time(&self) -> eyre::Result<u64> {
        Ok(self.client.chain_time().await?)
    }

    /// Checks the wallet holds `amount` PX and lets the registry spend it.
    async fn approve(&self, amount: U256) -> eyre::Result<()> {
        let px = self.token();
        let balance = px
            .balanceOf(self.me)
            .call()
            .await
            .map_err(px_sdk::Error::from)?;
        if balance < amount {
            return Err(px_sdk::Error::Config(format!(
                "the wallet {} holds {}, less than the {} to stake",
                self.me,
                units(balance, "PX"),
                units(amount, "PX")
            ))
            .into());
        }
        let allowance = px
            .allowance(self.me, self.registry)
            .call()
            .await
            .map_err(px_sdk::Error::from)?;
        if allowance < amount {
            send(px.approve(self.registry, amount)).await?;
        }
        Ok(())
    }
}

/// Sends a transaction and waits for its receipt; a revert (at gas estimation or on chain)
/// comes back as the SDK's `Reverted`, explained in words when the registry or the market
/// raised it.
async fn send<P: Provider, D: alloy::contract::CallDecoder>(
    call: CallBuilder<P, D, Ethereum>,
) -> eyre::Result<TransactionReceipt> {
    let pending = match call.send().await {
        Ok(p) => p,
        Err(e) => return Err(explain(px_sdk::Error::from(e))),
    };
    let receipt = pending.get_receipt().await.map_err(px_sdk::Error::from)?;
    if !receipt.status() {
        return Err(px_sdk::Error::TransactionFailed {
            tx_hash: receipt.transaction_hash,
        }
        .into());
    }
    Ok(receipt)
}

/// The SDK error with the registry's or market's custom error said in words before it.
fn explain(e: px_sdk::Error) -> eyre::Report {
    let data = match &e {
        px_sdk::Error::Reverted {
            revert: Revert::Unknown(data),
            ..
        } => data.clone(),
        _ => return e.into(),
    };
    let msg = if let Ok(r) = ProviderRegistryErrors::abi_decode(&data) {
        use ProviderRegistryErrors as R;
        match r {
            R::AlreadyRegistered(r) => format!(
                "{} is already registered as a provider: change its listing with `px provider \
                 update`, its stake with `px provider stake`",
                r.provider
            ),
            R::NotRegistered(r) => format!(
                "{} is not a registered provider: register with `px provider register`",
                r.provider
            ),
            R::StakeTooLow(r) => format!(
                "a stake of {} is below the registry's minimum stake of {}",
                units(r.stake, "PX"),
                units(r.minStake, "PX")
            ),
            R::InvalidListing(r) => format!(
                "invalid listing: the endpoint must have 1 to 256 bytes (it has {}) and the \
                 capacity must be positive (it is {})",
                r.endpointLength, r.capacity
            ),
            R::Exiting(r) => format!(
                "{} already requested its exit; `px provider status` shows when its stake \
                 unbonds",
                r.provider
            ),
            R::StillBonded(r) if r.unbondsAt.is_zero() => format!(
                "the stake of {} is bonded: request the exit first (`px provider exit`), then \
                 withdraw once it unbonds",
                r.provider
            ),
            R::StillBonded(r) => format!(
                "the stake of {} is still bonded: it unbonds at {} (unix time)",
                r.provider, r.unbondsAt
            ),
            R::HasActiveDeals(r) => format!(
                "{} still holds {} active deal(s): the stake can be withdrawn once they end",
                r.provider, r.activeDeals
            ),
            R::OutOfBounds(r) => format!(
                "{} is outside the allowed range {}..={}",
                r.value, r.min, r.max
            ),
            other => format!("the ProviderRegistry refused: {other:?}"),
        }
    } else if let Ok(m) = StorageMarketErrors::abi_decode(&data) {
        match m {
            StorageMarketErrors::NothingToClaim(r) => {
                format!("{} has no earnings to claim", r.account)
            }
            other => format!("the StorageMarket refused: {other:?}"),
        }
    } else {
        return e.into();
    };
    eyre::Report::new(e).wrap_err(msg)
}

/// An event of `receipt` decoded with `decode`.
fn event<T>(
    receipt: &TransactionReceipt,
    decode: impl Fn(&alloy::primitives::Log) -> Option<T>,
) -> eyre::Result<T> {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| decode(&l.inner))
        .ok_or_else(|| {
            px_sdk::Error::UnexpectedChainAnswer("the receipt lacks the expected event".into())
                .into()
        })
}

fn registry_event(l: &alloy::primitives::Log) -> Option<ProviderRegistryEvents> {
    ProviderRegistryEvents::decode_log(l).ok().map(|e| e.data)
}

async fn register(p: &Chain<'_>, a: RegisterArgs, json: bool) -> eyre::Result<()> {
    let min_stake = p
        .registry()
        .minStake()
        .call()
        .await
        .map_err(px_sdk::Error::from)?;
    let registered = p.listing(p.me).await?.capacity != 0;
    let stake = U256::from(a.stake);
    // Refusals come from the contract itself (checked before it takes the stake), so the
    // allowance is only given when the registration can pass.
    if !registered && stake >= min_stake {
        p.approve(stake).await?;
    }
    let receipt = send(p.registry().registerProvider(
        a.endpoint.clone(),
        a.region,
        a.capacity,
        a.price,
        a.stake,
    ))
    .await?;
    event(&receipt, |l| match registry_event(l)? {
        ProviderRegistryEvents::ProviderRegistered(e) => Some(e),
        _ => None,
    })?;
    output::emit(
        json,
        &json!({
            "provider": p.me,
            "endpoint": a.endpoint,
            "region": a.region,
            "capacity": a.capacity,
            "pricePerGibMonth": a.price.to_string(),
            "stake": stake.to_string(),
            "tx": receipt.transaction_hash,
        }),
        || {
            outln!(
                "registered provider {} at {}: {}, {} per GiB-month, region {}, stake {}",
                p.me,
                output::escape_name(&a.endpoint),
                human_bytes(a.capacity),
                units(U256::from(a.price), "PX"),
                a.region,
                units(stake, "PX")
            );
            outln!("start its node with `px-node --role provider` and this key");
        },
    );
    Ok(())
}

async fn update(p: &Chain<'_>, a: UpdateArgs, json: bool) -> eyre::Result<()> {
    let l = p.listing(p.me).await?;
    let endpoint = a.endpoint.unwrap_or(l.endpoint);
    let region = a.region.unwrap_or(l.region);
    let capacity = a.capacity.unwrap_or(l.capacity);
    let price = a.price.unwrap_or(l.pricePerGiBMonth);
    // Unregistered: the contract's NotRegistered says so.
    send(
        p.registry()
            .updateListing(endpoint.clone(), region, capacity, price),
    )
    .await?;
    if capacity < l.reserved {
        tracing::warn!(
            "the capacity is below the {} bytes reserved by deals",
            l.reserved
        );
    }
    output::emit(
        json,
        &json!({
            "provider": p.me,
            "endpoint": endpoint,
            "region": region,
            "capacity": capacity,
            "pricePerGibMonth": price.to_string(),
        }),
        || {
            outln!(
                "listing of {} updated: {}, {}, {} per GiB-month, region {}",
                p.me,
                output::escape_name(&endpoint),
                human_bytes(capacity),
                units(U256::from(price), "PX"),
                region
            );
        },
    );
    Ok(())
}

async fn stake(p: &Chain<'_>, amount: U96, json: bool) -> eyre::Result<()> {
    let amount_wei = U256::from(amount);
    if p.listing(p.me).await?.capacity != 0 {
        p.approve(amount_wei).await?;
    }
    let receipt = send(p.registry().addStake(amount)).await?;
    let added = event(&receipt, |l| match registry_event(l)? {
        ProviderRegistryEvents::StakeAdded(e) => Some(e),
        _ => None,
    })?;
    output::emit(
        json,
        &json!({ "provider": p.me, "added": amount_wei.to_string(), "stake": added.stake.to_string() }),
        || {
            outln!(
                "added {} to the stake of {}; it is now {}",
                units(amount_wei, "PX"),
                p.me,
                units(added.stake, "PX")
            );
        },
    );
    Ok(())
}

async fn set_paused(p: &Chain<'_>, paused: bool, json: bool) -> eyre::Result<()> {
    send(p.registry().setPaused(paused)).await?;
    output::emit(json, &json!({ "provider": p.me, "paused": paused }), || {
        if paused {
            outln!("{} paused: no new deals until `px provider resume`", p.me);
        } else {
            outln!("{} resumed", p.me);
        }
    });
    Ok(())
}

async fn exit(p: &Chain<'_>, json: bool) -> eyre::Result<()> {
    let receipt = send(p.registry().requestExit()).await?;
    let e = event(&receipt, |l| match registry_event(l)? {
        ProviderRegistryEvents::ExitRequested(e) => Some(e),
        _ => None,
    })?;
    let unbonds_at = u64::try_from(e.unbondsAt).unwrap_or(u64::MAX);
    let now = p.chain_time().await?;
    output::emit(
        json,
        &json!({ "provider": p.me, "unbondsAt": unbonds_at }),
        || {
            outln!(
                "{} is exiting: no new deals; its stake unbonds at {} (unix time, in {}), then \
                 `px provider withdraw` returns it",
                p.me,
                unbonds_at,
                human_duration(unbonds_at.saturating_sub(now))
            );
        },
    );
    Ok(())
}

async fn withdraw(p: &Chain<'_>, json: bool) -> eyre::Result<()> {
    let receipt = send(p.registry().withdrawStake()).await?;
    let e = event(&receipt, |l| match registry_event(l)? {
        ProviderRegistryEvents::StakeWithdrawn(e) => Some(e),
        _ => None,
    })?;
    output::emit(
        json,
        &json!({ "provider": p.me, "withdrawn": e.amount.to_string() }),
        || {
            outln!(
                "withdrew the stake of {}: {}; it is no longer registered",
                p.me,
                units(e.amount, "PX")
            );
        },
    );
    Ok(())
}

async fn claim(p: &Chain<'_>, json: bool) -> eyre::Result<()> {
    let receipt = send(p.market().claimEarnings()).await?;
    let e = event(&receipt, |l| {
        match StorageMarketEvents::decode_log(l).ok()?.data {
            StorageMarketEvents::EarningsClaimed(e) => Some(e),
            _ => None,
        }
    })?;
    output::emit(
        json,
        &json!({ "provider": p.me, "claimed": e.amount.to_string() }),
        || outln!("claimed {} of earnings to {}", units(e.amount, "PX"), p.me),
    );
    Ok(())
}

/// `px provider status` in JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    address: Address,
    registered: bool,
    endpoint: String,
    region: u16,
    capacity: u64,
    reserved: u64,
    price_per_gib_month: String,
    stake: String,
    min_stake: String,
    certified: bool,
    paused: bool,
    active: bool,
    active_deals: u32,
    /// Unix time the stake unbonds at; `None` when not exiting.
    unbonds_at: Option<u64>,
    /// Whether `unbondsAt` has passed (the stake may be withdrawn once no deal is active).
    unbonded: bool,
    earnings: String,
}

async fn status(p: &Chain<'_>, who: Address, json: bool) -> eyre::Result<()> {
    let l = p.listing(who).await?;
    let min_stake = p
        .registry()
        .minStake()
        .call()
        .await
        .map_err(px_sdk::Error::from)?;
    let earnings = p
        .market()
        .earningsOf(who)
        .call()
        .await
        .map_err(px_sdk::Error::from)?;
    let now = p.chain_time().await?;
    let unbonds_at = (l.unbondsAt != U40::ZERO).then(|| l.unbondsAt.to::<u64>());
    let st = Status {
        address: who,
        registered: l.capacity != 0,
        endpoint: l.endpoint,
        region: l.region,
        capacity: l.capacity,
        reserved: l.reserved,
        price_per_gib_month: l.pricePerGiBMonth.to_string(),
        stake: l.stake.to_string(),
        min_stake: min_stake.to_string(),
        certified: l.certified,
        paused: l.paused,
        active: l.active,
        active_deals: l.activeDeals,
        unbonds_at,
        unbonded: unbonds_at.is_some_and(|t| t <= now),
        earnings: earnings.to_string(),
    };
    output::emit(json, &st, || {
        outln!("provider     {who}");
        if !st.registered {
            outln!("registered   no (`px provider register` lists it)");
            outln!("earnings     {} claimable", units(earnings, "PX"));
            return;
        }
        outln!("endpoint     {}", output::escape_name(&st.endpoint));
        outln!("region       {}", st.region);
        outln!(
            "capacity     {} ({} reserved by {} active deal(s), {} free)",
            human_bytes(st.capacity),
            human_bytes(st.reserved),
            st.active_deals,
            human_bytes(st.capacity.saturating_sub(st.reserved))
        );
        outln!(
            "price        {} per GiB-month",
            units(U256::from(l.pricePerGiBMonth), "PX")
        );
        outln!(
            "stake        {} (minimum {})",
            units(U256::from(l.stake), "PX"),
            units(min_stake, "PX")
        );
        outln!("certified    {}", yes_no(st.certified));
        outln!("paused       {}", yes_no(st.paused));
        outln!("active       {}", yes_no(st.active));
        match unbonds_at {
            None => outln!("unbonding    not exiting"),
            Some(t) if t <= now => {
                outln!("unbonding    unbonded at {t} (unix time): `px provider withdraw`");
            }
            Some(t) => outln!(
                "unbonding    exiting, unbonds at {t} (unix time, in {})",
                human_duration(t - now)
            ),
        }
        outln!("earnings     {} claimable", units(earnings, "PX"));
    });
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// An `http://` or `https://` URL with a host.
fn parse_endpoint(s: &str) -> Result<String, String> {
    let t = s.trim();
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not an http:// or https:// URL with a host"
        ));
    }
    if t.len() > 256 {
        return Err(format!("the endpoint has {} bytes; at most 256", t.len()));
    }
    Ok(t.trim_end_matches('/').to_owned())
}

/// A byte count with an optional unit: B, KiB/MiB/GiB/TiB/PiB (also K, M, G, T, P) in powers
/// of 1024, kB/MB/GB/TB/PB in powers of 1000; decimals allowed (`1.5GiB`), whole bytes after.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "p" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, or kB, MB, GB, TB)"
            ));
        }
    };
    let v = decimal(num, mult).ok_or_else(|| format!("{s:?} is not a size (e.g. 10GiB)"))?;
    let v = u64::try_from(v).map_err(|_| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err("the capacity must be positive".into());
    }
    Ok(v)
}

/// `num` (digits, at most one dot) times `mult`, rounded down; `None` when malformed.
fn decimal(num: &str, mult: u128) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 18 {
        return None;
    }
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let part: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    whole
        .checked_mul(mult)?
        .checked_add(part.checked_mul(mult)? / scale)
}

/// PX with up to 18 decimals, in wei (`px fund`'s parser).
fn parse_wei(s: &str) -> Result<u128, String> {
    let v = super::fund::px_wei(s)?;
    u128::try_from(v).map_err(|_| format!("{s:?} is too large"))
}

/// A price per GiB-month (zero allowed).
fn parse_price(s: &str) -> Result<u128, String> {
    parse_wei(s)
}

/// A positive stake that fits the registry's 96 bits.
fn parse_stake(s: &str) -> Result<U96, String> {
    let v = parse_wei(s)?;
    if v == 0 {
        return Err("the amount must be positive".into());
    }
    U96::try_from(v).map_err(|_| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("10 GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("10g").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("1.5TiB").unwrap(), 3 << 39);
        assert_eq!(parse_bytes("2TB").unwrap(), 2_000_000_000_000);
        assert_eq!(parse_bytes("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("0.5KiB").unwrap(), 512);
        for bad in [
            "",
            "GiB",
            "0",
            "0GiB",
            "-1GiB",
            "10 XB",
            "1.2.3G",
            "1e9",
            "99999999PiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prices_and_stakes_parse_to_wei() {
        let px = 1_000_000_000_000_000_000u128;
        assert_eq!(parse_price("0.5").unwrap(), px / 2);
        assert_eq!(parse_price("0").unwrap(), 0);
        assert_eq!(parse_price("2 PX").unwrap(), 2 * px);
        assert_eq!(parse_price("0.000000000000000001").unwrap(), 1);
        assert!(
            parse_price("0.0000000000000000001")
                .unwrap_err()
                .contains("decimals")
        );
        assert!(parse_price("2,5").is_err());
        assert_eq!(parse_stake("100").unwrap(), U96::from(100 * px));
        assert!(parse_stake("0").unwrap_err().contains("positive"));
        // 2^96 wei is about 79.2 billion PX.
        assert!(
            parse_stake("80000000000")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert_eq!(
            parse_endpoint("https://p.example:8443/").unwrap(),
            "https://p.example:8443"
        );
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "ftp://x",
            "p.example",
            "http://",
            "https:///x",
            "http://a b",
            "",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
    }
}
