//! Integration tests against real components: anvil with the project's forge deployment (the
//! real Chainlink Operator and StorageNFT), the embedded store's real Kubo RPC router, and the
//! oracle's own router, relayer and binary.

mod adapter;
mod common;
mod records;
mod relayer;
