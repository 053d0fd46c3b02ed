//! The deployment file `deployments/<chainId>.json` written by `script/Deploy.s.sol`.

use std::path::Path;

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Addresses and parameters of one PX storage deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Chain id the contracts live on.
    pub chain_id: u64,
    /// Block at or before the first deployment transaction: where log scans start.
    pub start_block: u64,
    /// The StorageNFT contract.
    #[serde(rename = "storageNFT")]
    pub storage_nft: Address,
    /// The PXToken plans are priced in.
    pub px_token: Address,
    /// The LINK token.
    pub link: Address,
    /// The Chainlink Operator sync requests go through.
    pub operator: Address,
    /// The Chainlink job (spec) id of the sync job.
    pub job_id: B256,
    /// LINK paid per sync request (wei).
    pub fee: u128,
    /// Admin of the contracts.
    pub admin: Address,
    /// Address the oracle fulfills from (zero when an existing Operator was reused).
    pub oracle_sender: Address,
    /// Storage node key holding REGISTRAR_ROLE (zero when none was granted).
    pub registrar: Address,
    /// The provider registry (absent from deployment files written before the storage market).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_registry: Option<Address>,
    /// The storage market (absent from deployment files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_market: Option<Address>,
}

/// Errors reading a deployment file.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The file could not be read.
    #[error("cannot read deployment file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid deployment.
    #[error("invalid deployment file {path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DeploymentError> {
        let path = path.as_ref();
        let display = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| DeploymentError::Io {
            path: display.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| DeploymentError::Json {
            path: display,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_deploy_script_writes() {
        let json = r#"{
          "admin": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
          "chainId": 31337,
          "fee": 100000000000000000,
          "jobId": "0x3866336532623163346435613465366639613062316332643365346635613662",
          "link": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          "operator": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
          "oracleSender": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
          "pxToken": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
          "registrar": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
          "startBlock": 0,
          "storageNFT": "0x0165878A594ca255338adfa4d48449f69242Eb8F"
        }"#;
        let d: Deployment = serde_json::from_str(json).unwrap();
        assert_eq!(d.chain_id, 31337);
        assert_eq!(d.fee, 100_000_000_000_000_000);
        assert_eq!(&d.job_id[..4], b"8f3e");
        assert_eq!(
            d.provider_registry, None,
            "files from before the market still parse"
        );
        assert_eq!(d.storage_market, None);
    }

    #[test]
    fn parses_the_market_addresses() {
        let json = r#"{
          "admin": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
          "chainId": 31337,
          "fee": 100000000000000000,
          "jobId": "0x3866336532623163346435613465366639613062316332643365346635613662",
          "link": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          "operator": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
          "oracleSender": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
          "providerRegistry": "0x9A676e781A523b5d0C0e43731313A708CB607508",
          "pxToken": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
          "registrar": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
          "startBlock": 0,
          "storageMarket": "0x0B306BF915C4d645ff596e518fAf3F9669b97016",
          "storageNFT": "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853"
        }"#;
        let d: Deployment = serde_json::from_str(json).unwrap();
        assert!(d.provider_registry.is_some());
        assert!(d.storage_market.is_some());
        let back: Deployment = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
