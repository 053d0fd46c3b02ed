//! The devnet helper deploys the real contracts through the forge script.

use alloy::{primitives::U256, providers::Provider};
use px_cli::devnet::{Devnet, DevnetConfig, ORACLE, REGISTRAR};
use px_sdk::contracts::{Operator, StorageNFT};

#[tokio::test]
async fn devnet_deploys_contracts_with_roles_and_plans() {
    let devnet = Devnet::spawn(DevnetConfig::default())
        .await
        .expect("devnet");
    let d = &devnet.deployment;
    assert_eq!(d.chain_id, 31337);
    assert_eq!(d.oracle_sender, devnet.address(ORACLE));
    assert_eq!(d.registrar, devnet.address(REGISTRAR));

    let provider = devnet.provider(0);
    let nft = StorageNFT::new(d.storage_nft, &provider);
    assert_eq!(nft.planCount().call().await.unwrap(), U256::from(3));
    let role = nft.REGISTRAR_ROLE().call().await.unwrap();
    assert!(
        nft.hasRole(role, devnet.address(REGISTRAR))
            .call()
            .await
            .unwrap()
    );

    let operator = Operator::new(d.operator, &provider);
    assert!(
        operator
            .isAuthorizedSender(devnet.address(ORACLE))
            .call()
            .await
            .unwrap()
    );

    // Time travel moves the chain clock past the 30-day sync window.
    assert_eq!(
        nft.syncWindow().call().await.unwrap(),
        U256::from(30 * 24 * 3600)
    );
    let now = || async {
        let block = provider
            .get_block_by_number(Default::default())
            .await
            .unwrap()
            .unwrap();
        block.header.timestamp
    };
    let before = now().await;
    devnet.time_travel(31 * 24 * 3600).await.unwrap();
    assert!(now().await >= before + 31 * 24 * 3600);
}
