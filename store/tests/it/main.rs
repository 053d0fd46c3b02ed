//! px-store integration tests: a real server on 127.0.0.1:0 driven by the real
//! `ipfs-api-backend-hyper` client (plus raw HTTP for error shapes).

mod common;
mod conformance;
mod crash;
mod daemon;
mod errors;
mod ipns;
mod kubo;
mod kubod;
mod layout;
mod restart;
mod router;
