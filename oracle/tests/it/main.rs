//! Integration tests against real components: anvil with the project's forge deployment (the
//! real Chainlink Operator and StorageNFT), the IPFS backend `PX_TEST_IPFS` selects (the
//! embedded store's real Kubo RPC router by default, or a Kubo or js-ipfs daemon), and the
//! oracle's own router, relayer and binary.

mod adapter;
mod backends;
mod common;
mod fault_proxy;
mod faults;
mod records;
mod relayer;
