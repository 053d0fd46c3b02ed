//! `px devnet --story network`: the provider network's story (issue 17), run against the
//! devnet's home node and provider nodes ([`super::Stack`], started with `--providers`, 6 by
//! default).
//!
//! Each step prints what it did with figures read from the chain (the ProviderRegistry's
//! stakes, the StorageMarket's deals, escrow and earnings, PXToken balances) or from the nodes
//! (the home node's `GET /v1/tokens/{id}/network`, the files downloaded):
//! 1. the providers answer `/health` and the registry lists them active and certified;
//! 2. fund a token: mint it through the home node, name the home node
//!    (`StorageMarket.setHomeNode`), approve and `fund` its escrow;
//! 3. upload a 64 MiB file at 4/6 through the SDK; the home node opens a deal with every
//!    provider holding a piece;
//! 4. stop 2 providers (killed: they answer nothing from then on);
//! 5. download the file (from the 4 left) and compare;
//! 6. advance a period (`anvil_mine`): the stopped providers miss their proofs and
//!    `markMissed` slashes them (stakes before and after);
//! 7. the running providers' proofs were accepted: their deals moved on a period and their
//!    earnings are claimable (`earningsOf`);
//! 8. start 2 fresh providers (new accounts, registered, staked, certified) and wait for the
//!    home node's repair loop to move the missing pieces to them (every segment healthy);
//! 9. stop 2 other original providers;
//! 10. download and compare again (the repaired pieces take part);
//! 11. the providers with earnings claim them (`claimEarnings`; balances before and after).

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;
use eyre::{bail, eyre};
use px_cli::devnet::{ADMIN, FIRST_USER};
use px_core::network::Manifest;
use px_sdk::{
    Client, ClientConfig, ListedFile, NetworkDownload, NetworkDownloadOptions,
    NetworkUploadOptions, Payment,
    api::TokenNetwork,
    contracts::{IStorageMarket, PXToken, ProviderRegistry, StorageMarket},
};

use super::{ProviderInfo, Stack, Steps, send};
use crate::commands::units;
use crate::output::outln;

/// Providers the story needs: 6 for a 4/6 placement (2 are stopped, later 2 others).
pub(super) const PROVIDERS: usize = 6;
/// The file's size: 64 MiB (one segment at the devnet's default segment size).
const FILE_BYTES: usize = 64 << 20;
/// The redundancy the story uploads at.
const REDUNDANCY: &str = "4/6";
/// PXToken the story's user funds the token's escrow with.
const ESCROW_PX: u64 = 100;
/// How long the home node may take to open the deals, and the repair loop to heal the file.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the running providers may take to prove a period once it is due.
const PROOF_TIMEOUT: Duration = Duration::from_secs(120);
/// `IStorageMarket.DealStatus.Active`.
const DEAL_ACTIVE: u8 = 1;

/// Runs the network story (see the module docs); an error names the step that failed.
pub(super) async fn story(stack: &Stack) -> eyre::Result<()> {
    let d = &stack.devnet.deployment;
    let market_addr = d
        .storage_market
        .ok_or_else(|| eyre!("the deployment has no StorageMarket"))?;
    let registry_addr = d
        .provider_registry
        .ok_or_else(|| eyre!("the deployment has no ProviderRegistry"))?;
    let user = FIRST_USER;
    let config = ClientConfig::new(stack.devnet.rpc_url(), stack.devnet.signer(user), d.clone())
        .with_node(stack.node_url.clone());
    let client = Client::new(config).await?;
    let registry = ProviderRegistry::new(registry_addr, stack.devnet.provider(ADMIN));
    let reader = StorageMarket::new(market_addr, stack.devnet.provider(ADMIN));
    let mut steps = Steps {
        n: 0,
        backend: stack.backend,
    };
    outln!("\nnetwork story as {}", client.address());

    let originals = stack.provider_infos();
    steps
        .run(
            "the providers answer /health and are listed active and certified",
            async {
                let http = reqwest::Client::new();
                let mut staked = U256::ZERO;
                for p in &originals {
                    http.get(format!("{}/health", p.url))
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| eyre!("{} at {} does not answer: {e}", p.name, p.url))?;
                    let l = registry.providerOf(p.address).call().await?;
                    if !(l.active && l.certified) || l.endpoint != p.url {
                        bail!(
                            "{} is listed active {}, certified {}, at {:?}",
                            p.name,
                            l.active,
                            l.certified,
                            l.endpoint
                        );
                    }
                    staked += U256::from(l.stake);
                }
                let count = registry.providerCount().call().await?;
                Ok((
                    (),
                    format!(
                        "{} provider nodes up; registry lists {count}, {} staked in all",
                        originals.len(),
                        units(staked, "PX")
                    ),
                ))
            },
        )
        .await?;

    let token = steps
        .run(
            "fund a token: mint it, name the home node, fund its escrow",
            async {
                let id = client.mint_via_node(2, Payment::Permit).await?;
                let home = home_node(&client, stack).await?;
                let market = StorageMarket::new(market_addr, stack.devnet.provider(user));
                send(
                    market.setHomeNode(U256::from(id), home),
                    "StorageMarket.setHomeNode",
                )
                .await?;
                let amount = px(ESCROW_PX);
                let token = PXToken::new(d.px_token, stack.devnet.provider(user));
                send(token.approve(market_addr, amount), "PXToken.approve").await?;
                let market = StorageMarket::new(market_addr, stack.devnet.provider(user));
                send(market.fund(U256::from(id), amount), "StorageMarket.fund").await?;
                let named = reader.homeNodeOf(U256::from(id)).call().await?;
                if named != home {
                    bail!("homeNodeOf({id}) is {named}, not the home node {home}");
                }
                let escrow = reader.escrowOf(U256::from(id)).call().await?;
                Ok((
                    id,
                    format!(
                        "token {id}, home node {home}, escrow {}",
                        units(escrow, "PX")
                    ),
                ))
            },
        )
        .await?;

    let data = px_cli::devnet::sample_bytes(FILE_BYTES, 17);
    let uploaded = steps
        .run(
            "upload a 64 MiB file at 4/6; the home node opens the deals",
            async {
                let up = upload_network(&client, token, "network.bin", &data).await?;
                let holders = manifest_providers(&up.manifest);
                let net = wait_network(&client, token, "the deals to open", |n| {
                    deals_settled(n, &holders)
                })
                .await?;
                let held: u32 = net.deals.iter().map(|d| u32::from(d.piece_count)).sum();
                let detail = format!(
                    "file {} ({} MiB, {} segment(s) at {}) on {} providers; {} deals active \
                     holding {held} pieces; escrow left {}",
                    up.file.entry.id,
                    FILE_BYTES >> 20,
                    up.manifest.segments.len(),
                    up.manifest.redundancy,
                    holders.len(),
                    net.deals.len(),
                    units(net.escrow.parse::<U256>()?, "PX")
                );
                Ok((up, detail))
            },
        )
        .await?;

    // The providers stopped first hold pieces 0 and 1 of the first segment, the second pair
    // pieces 2 and 3: each pair is two pieces of every segment (n distinct providers each).
    let holder = |piece: usize| -> eyre::Result<ProviderInfo> {
        let address = uploaded.manifest.segments[0]
            .pieces
            .get(piece)
            .ok_or_else(|| eyre!("the manifest's first segment has no piece {piece}"))?
            .provider;
        originals
            .iter()
            .find(|p| p.address == address)
            .cloned()
            .ok_or_else(|| eyre!("piece {piece} is on {address}, not a provider of the devnet"))
    };
    let stopped = vec![holder(0)?, holder(1)?];
    let second = vec![holder(2)?, holder(3)?];
    let running: Vec<ProviderInfo> = originals
        .iter()
        .filter(|p| !stopped.iter().any(|s| s.address == p.address))
        .cloned()
        .collect();
    steps
        .run("stop 2 providers", async {
            for p in &stopped {
                stack.stop_provider(p.address).await?;
            }
            Ok(((), format!("stopped {}", names(&stopped))))
        })
        .await?;

    steps
        .run("download the file and compare", async {
            let (out, report) = download_network(&client, token, &uploaded.file).await?;
            same(&out, &data)?;
            Ok((
                (),
                format!(
                    "{} identical bytes; {} provider fault(s), {} request(s) cancelled",
                    out.len(),
                    report.faults.len(),
                    report.cancelled
                ),
            ))
        })
        .await?;

    let deal_of = |p: &ProviderInfo| deal_id(token, p.address);
    let before_period = steps
        .run(
            "advance a period: the stopped providers miss their proofs and are slashed",
            async {
                let first = stack.devnet.block_number().await?;
                let before_running = deals(&reader, &running, deal_of).await?;
                let before_stopped = deals(&reader, &stopped, deal_of).await?;
                let stakes_before = stakes(&registry, &stopped).await?;
                let (period_blocks, window) = market_config(&reader).await?;
                let due = |d: &IStorageMarket::Deal| {
                    d.startBlock.to::<u64>() + (u64::from(d.nextPeriod) + 1) * period_blocks
                };
                // Each running deal's period ends at its challenge block: mine up to it and let
                // its provider prove within the window (deals opened a few blocks apart).
                let mut order: Vec<usize> = (0..running.len()).collect();
                order.sort_by_key(|&i| due(&before_running[i]));
                for i in order {
                    let challenge = due(&before_running[i]);
                    let now = stack.devnet.block_number().await?;
                    if now <= challenge {
                        stack.devnet.mine_blocks(challenge + 1 - now).await?;
                    }
                    wait_proven(&reader, &running[i], &before_running[i], deal_of).await?;
                }
                // Then past the stopped providers' windows: their periods are missed.
                let closed = before_stopped
                    .iter()
                    .map(|d| due(d) + window + 1)
                    .max()
                    .ok_or_else(|| eyre!("no deals"))?;
                let now = stack.devnet.block_number().await?;
                if now < closed {
                    stack.devnet.mine_blocks(closed - now).await?;
                }
                let keeper = StorageMarket::new(market_addr, stack.devnet.provider(user));
                for (p, before) in stopped.iter().zip(&before_stopped) {
                    // The home node marks its tokens' missed periods too: whoever is first.
                    let marked = send(
                        keeper.markMissed(deal_of(p).into()),
                        "StorageMarket.markMissed",
                    )
                    .await;
                    let after = reader.dealOf(deal_of(p).into()).call().await?;
                    if after.misses <= before.misses {
                        let why = marked.err().map(|e| format!(": {e:#}")).unwrap_or_default();
                        bail!("{}'s deal shows no miss{why}", p.name);
                    }
                }
                let stakes_after = stakes(&registry, &stopped).await?;
                let mut figures = Vec::new();
                for ((p, b), a) in stopped.iter().zip(&stakes_before).zip(&stakes_after) {
                    if a >= b {
                        bail!(
                            "{}'s stake did not fall: {} -> {}",
                            p.name,
                            units(*b, "PX"),
                            units(*a, "PX")
                        );
                    }
                    figures.push(format!(
                        "{} {} -> {}",
                        p.name,
                        units(*b, "PX"),
                        units(*a, "PX")
                    ));
                }
                Ok((
                    before_running,
                    format!(
                        "blocks {first} -> {}; stakes: {}",
                        stack.devnet.block_number().await?,
                        figures.join(", ")
                    ),
                ))
            },
        )
        .await?;

    steps
        .run(
            "the running providers' proofs were accepted; their earnings are claimable",
            async {
                let mut figures = Vec::new();
                for (p, before) in running.iter().zip(&before_period) {
                    let now = reader.dealOf(deal_of(p).into()).call().await?;
                    if now.nextPeriod <= before.nextPeriod || now.misses != before.misses {
                        bail!(
                            "{}'s deal is at period {} with {} misses (was {} with {})",
                            p.name,
                            now.nextPeriod,
                            now.misses,
                            before.nextPeriod,
                            before.misses
                        );
                    }
                    let earned = reader.earningsOf(p.address).call().await?;
                    if earned.is_zero() {
                        bail!("{} has no earnings", p.name);
                    }
                    figures.push(format!("{} {}", p.name, units(earned, "PX")));
                }
                Ok(((), format!("earnings: {}", figures.join(", "))))
            },
        )
        .await?;

    let fresh = steps
        .run(
            "start 2 fresh providers; the repair loop moves the missing pieces to them",
            async {
                let started = Instant::now();
                let mut fresh = Vec::new();
                for _ in 0..2 {
                    fresh.push(stack.start_provider().await?);
                }
                let net = wait_network(&client, token, "every segment to be healthy", |n| {
                    healthy(n) && fresh.iter().all(|p| holds(n, p.address))
                })
                .await?;
                let repaired: u64 = net.files.iter().map(|f| f.repaired).sum();
                let on_fresh: Vec<String> = fresh
                    .iter()
                    .map(|p| {
                        let n = net
                            .deals
                            .iter()
                            .filter(|d| d.provider == p.address)
                            .map(|d| u32::from(d.piece_count) + d.pending_pieces)
                            .sum::<u32>();
                        format!("{} holds {n}", p.name)
                    })
                    .collect();
                Ok((
                    fresh.clone(),
                    format!(
                        "started {}; {repaired} piece(s) repaired in {:.1} s; {}; healthy per \
                         segment: {}",
                        names(&fresh),
                        started.elapsed().as_secs_f64(),
                        on_fresh.join(", "),
                        health_figures(&net)
                    ),
                ))
            },
        )
        .await?;

    steps
        .run("stop 2 other original providers", async {
            for p in &second {
                stack.stop_provider(p.address).await?;
            }
            Ok(((), format!("stopped {}", names(&second))))
        })
        .await?;

    steps
        .run("download the file and compare again", async {
            let (out, report) = download_network(&client, token, &uploaded.file).await?;
            same(&out, &data)?;
            let on_fresh = manifest_providers(&report.manifest)
                .iter()
                .filter(|a| fresh.iter().any(|p| p.address == **a))
                .count();
            let up: Vec<_> = stack
                .provider_infos()
                .into_iter()
                .filter(|p| p.running)
                .collect();
            if on_fresh != fresh.len() {
                bail!(
                    "the manifest read places pieces on {on_fresh} of the {} fresh providers",
                    fresh.len()
                );
            }
            Ok((
                (),
                format!(
                    "{} identical bytes; {} provider fault(s); providers running: {}",
                    out.len(),
                    report.faults.len(),
                    names(&up)
                ),
            ))
        })
        .await?;

    steps
        .run("the providers claim their earnings", async {
            let px_token = PXToken::new(d.px_token, stack.devnet.provider(ADMIN));
            let mut figures = Vec::new();
            for p in originals.iter().chain(&fresh) {
                let earned = reader.earningsOf(p.address).call().await?;
                if earned.is_zero() {
                    continue;
                }
                let account = stack
                    .provider_account(p.address)
                    .ok_or_else(|| eyre!("no account for {}", p.name))?;
                let before = px_token.balanceOf(p.address).call().await?;
                let market = StorageMarket::new(market_addr, stack.devnet.provider(account));
                send(market.claimEarnings(), "StorageMarket.claimEarnings").await?;
                let after = px_token.balanceOf(p.address).call().await?;
                let left = reader.earningsOf(p.address).call().await?;
                if after - before != earned || !left.is_zero() {
                    bail!(
                        "{} claimed {} of {} earned",
                        p.name,
                        units(after - before, "PX"),
                        units(earned, "PX")
                    );
                }
                figures.push(format!(
                    "{} +{} (balance {})",
                    p.name,
                    units(earned, "PX"),
                    units(after, "PX")
                ));
            }
            if figures.len() < running.len() {
                bail!(
                    "{} provider(s) had earnings, {} proved",
                    figures.len(),
                    running.len()
                );
            }
            Ok(((), figures.join(", ")))
        })
        .await?;
    Ok(())
}

/// The home node's chain account (`GET /v1/network`), checked to be the registrar the devnet
/// gave it.
async fn home_node(client: &Client, stack: &Stack) -> eyre::Result<Address> {
    let info = client.network_info().await?;
    let registrar = stack.devnet.deployment.registrar;
    if info.home != registrar {
        bail!(
            "the home node says its account is {}, the devnet gave it {registrar}",
            info.home
        );
    }
    Ok(info.home)
}

/// A file the story uploaded: its listing and the manifest committed.
struct Uploaded {
    file: ListedFile,
    manifest: Manifest,
}

/// Uploads `data` to the providers at [`REDUNDANCY`] through the SDK.
async fn upload_network(
    client: &Client,
    token: u64,
    name: &str,
    data: &[u8],
) -> eyre::Result<Uploaded> {
    use sha2::Digest;
    let sha256: [u8; 32] = sha2::Sha256::digest(data).into();
    let opts = NetworkUploadOptions {
        redundancy: Some(REDUNDANCY.parse()?),
        ..Default::default()
    };
    let up = client
        .upload_to_network(
            token,
            std::io::Cursor::new(data.to_vec()),
            data.len() as u64,
            sha256,
            name,
            opts,
        )
        .await?;
    let file = client
        .find(token, &up.upload.file.cid)
        .await?
        .into_iter()
        .find(|f| f.entry.id == up.upload.file.id)
        .ok_or_else(|| eyre!("file {} is not in the token's listing", up.upload.file.id))?;
    Ok(Uploaded {
        file,
        manifest: up.manifest,
    })
}

/// Downloads `file` of `token` from the providers through the SDK: the bytes and the
/// providers that failed.
async fn download_network(
    client: &Client,
    token: u64,
    file: &ListedFile,
) -> eyre::Result<(Vec<u8>, NetworkDownload)> {
    let mut out = Vec::new();
    let report = client
        .download_from_network(token, file, &mut out, NetworkDownloadOptions::default())
        .await?;
    Ok((out, report))
}

/// The home node's view of the token on the network (`GET /v1/tokens/{id}/network`).
async fn token_network(client: &Client, token: u64) -> eyre::Result<TokenNetwork> {
    Ok(client.token_network(token).await?)
}

/// Polls the token's network status until `done` holds, for up to [`NETWORK_TIMEOUT`].
async fn wait_network(
    client: &Client,
    token: u64,
    what: &str,
    done: impl Fn(&TokenNetwork) -> bool,
) -> eyre::Result<TokenNetwork> {
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    loop {
        let net = token_network(client, token).await?;
        if done(&net) {
            return Ok(net);
        }
        if Instant::now() >= deadline {
            bail!(
                "waited {} s for {what}; deals: {}; healthy per segment: {}",
                NETWORK_TIMEOUT.as_secs(),
                net.deals
                    .iter()
                    .map(|d| format!("{} {} ({} pending)", d.provider, d.status, d.pending_pieces))
                    .collect::<Vec<_>>()
                    .join(", "),
                health_figures(&net)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every provider in `holders` has an active deal with its pieces under the on-chain root.
fn deals_settled(net: &TokenNetwork, holders: &[Address]) -> bool {
    !net.files.is_empty()
        && holders.iter().all(|h| {
            net.deals.iter().any(|d| {
                d.provider == *h
                    && d.status == "active"
                    && d.pending_pieces == 0
                    && d.piece_count > 0
            })
        })
}

/// The distinct providers a manifest places pieces on, in order of first appearance.
fn manifest_providers(m: &Manifest) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for p in m.segments.iter().flat_map(|s| &s.pieces) {
        if !out.contains(&p.provider) {
            out.push(p.provider);
        }
    }
    out
}

/// Every segment of every file has all `n` pieces healthy.
fn healthy(net: &TokenNetwork) -> bool {
    !net.files.is_empty()
        && net.files.iter().all(|f| {
            let n = f.redundancy.n();
            f.healthy.iter().all(|h| usize::from(*h) >= usize::from(n))
        })
}

/// Whether `provider` has a deal with the token holding pieces (on chain or pending).
fn holds(net: &TokenNetwork, provider: Address) -> bool {
    net.deals
        .iter()
        .any(|d| d.provider == provider && (d.piece_count > 0 || d.pending_pieces > 0))
}

fn health_figures(net: &TokenNetwork) -> String {
    net.files
        .iter()
        .map(|f| {
            let h: Vec<String> = f.healthy.iter().map(|h| h.to_string()).collect();
            format!("file {} [{}] of {}", f.id, h.join(" "), f.redundancy)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `StorageMarket.dealIdOf(token, provider)`.
fn deal_id(token: u64, provider: Address) -> B256 {
    keccak256((U256::from(token), provider).abi_encode())
}

/// The deals of `providers` with the token, checked active.
async fn deals<P: alloy::providers::Provider>(
    reader: &StorageMarket::StorageMarketInstance<P>,
    providers: &[ProviderInfo],
    deal_of: impl Fn(&ProviderInfo) -> B256,
) -> eyre::Result<Vec<IStorageMarket::Deal>> {
    let mut out = Vec::new();
    for p in providers {
        let d = reader.dealOf(deal_of(p).into()).call().await?;
        if d.status != DEAL_ACTIVE {
            bail!("{}'s deal is not active (status {})", p.name, d.status);
        }
        out.push(d);
    }
    Ok(out)
}

/// The market's period length and proof window, in blocks.
async fn market_config<P: alloy::providers::Provider>(
    reader: &StorageMarket::StorageMarketInstance<P>,
) -> eyre::Result<(u64, u64)> {
    let c = reader.config().call().await?;
    Ok((u64::from(c.periodBlocks), u64::from(c.proofWindow)))
}

/// Waits until `p`'s deal has moved past the period it was at (`before`): proven.
async fn wait_proven<P: alloy::providers::Provider>(
    reader: &StorageMarket::StorageMarketInstance<P>,
    p: &ProviderInfo,
    before: &IStorageMarket::Deal,
    deal_of: impl Fn(&ProviderInfo) -> B256,
) -> eyre::Result<()> {
    let deadline = Instant::now() + PROOF_TIMEOUT;
    loop {
        let d = reader.dealOf(deal_of(p).into()).call().await?;
        if d.nextPeriod > before.nextPeriod {
            if d.misses != before.misses {
                bail!("{} missed period {}", p.name, before.nextPeriod);
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not prove period {} within {} s",
                p.name,
                before.nextPeriod,
                PROOF_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The registry's stakes of `providers`.
async fn stakes<P: alloy::providers::Provider>(
    registry: &ProviderRegistry::ProviderRegistryInstance<P>,
    providers: &[ProviderInfo],
) -> eyre::Result<Vec<U256>> {
    let mut out = Vec::new();
    for p in providers {
        out.push(registry.stakeOf(p.address).call().await?);
    }
    Ok(out)
}

fn same(got: &[u8], want: &[u8]) -> eyre::Result<()> {
    if got != want {
        bail!(
            "downloaded {} bytes that differ from the {} uploaded",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

fn names(providers: &[ProviderInfo]) -> String {
    providers
        .iter()
        .map(|p| format!("{} ({})", p.name, p.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` PX in wei.
fn px(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}
