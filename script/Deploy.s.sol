// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Script, console} from "forge-std/Script.sol";

import {Deployer} from "./Deployer.sol";

/// @title Deploy
/// @notice Deploys PX storage (StorageNFT, and the provider registry and storage market with
/// `devnetMarketParams`) and writes `deployments/<chainId>.json` for the Rust side.
///
/// Environment:
/// - `DEPLOYER_KEY`: private key of the broadcaster, who becomes admin (anvil: account 0).
/// - `ORACLE_SENDER`: address the oracle fulfills from (anvil: account 1).
/// - `REGISTRAR`: storage node key granted REGISTRAR_ROLE (anvil: account 2).
/// - On chains other than anvil (31337): `LINK_TOKEN` and `OPERATOR` (existing Chainlink
///   deployment), `JOB_ID`, `LINK_FEE`; optional `PX_TOKEN`, `LINK_FUNDING`, `MIN_SYNC_INTERVAL`.
/// - `DEPLOYMENT_OUT`: where to write the deployment JSON (under `deployments/`; default
///   `deployments/<chainId>.json`).
///
/// `forge script script/Deploy.s.sol --rpc-url $RPC --broadcast`
contract Deploy is Script, Deployer {
    uint256 private constant _ANVIL_CHAIN_ID = 31_337;
    // anvil's well-known dev accounts (mnemonic "test test ... junk"), devnet only.
    uint256 private constant _ANVIL_KEY_0 =
        0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    address private constant _ANVIL_ACCOUNT_1 = 0x70997970C51812dc3A010C7d01b50e0d17dc79C8;
    address private constant _ANVIL_ACCOUNT_2 = 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC;

    function run() external returns (Deployment memory d) {
        bool anvil = block.chainid == _ANVIL_CHAIN_ID;
        uint256 key = anvil ? vm.envOr("DEPLOYER_KEY", _ANVIL_KEY_0) : vm.envUint("DEPLOYER_KEY");
        address admin = vm.addr(key);
        DeployConfig memory c;
        if (anvil) {
            c = devnetConfig(
                admin,
                vm.envOr("ORACLE_SENDER", _ANVIL_ACCOUNT_1),
                vm.envOr("REGISTRAR", _ANVIL_ACCOUNT_2)
            );
        } else {
            c = DeployConfig({
                admin: admin,
                oracleSender: address(0),
                registrar: vm.envOr("REGISTRAR", address(0)),
                link: vm.envAddress("LINK_TOKEN"),
                operator: vm.envAddress("OPERATOR"),
                pxToken: vm.envOr("PX_TOKEN", address(0)),
                jobId: vm.envBytes32("JOB_ID"),
                fee: vm.envUint("LINK_FEE"),
                minSyncInterval: vm.envOr("MIN_SYNC_INTERVAL", uint256(1 hours)),
                linkFunding: vm.envOr("LINK_FUNDING", uint256(0))
            });
        }

        vm.startBroadcast(key);
        d = deploy(c);
        vm.stopBroadcast();

        _write(d, c);
    }

    function _write(Deployment memory d, DeployConfig memory c) private {
        string memory o = "deployment";
        vm.serializeUint(o, "chainId", block.chainid);
        vm.serializeUint(o, "startBlock", d.startBlock);
        vm.serializeAddress(o, "link", d.link);
        vm.serializeAddress(o, "operator", d.operator);
        vm.serializeAddress(o, "pxToken", d.pxToken);
        vm.serializeAddress(o, "admin", c.admin);
        vm.serializeAddress(o, "oracleSender", c.oracleSender);
        vm.serializeAddress(o, "registrar", c.registrar);
        vm.serializeBytes32(o, "jobId", c.jobId);
        vm.serializeUint(o, "fee", c.fee);
        vm.serializeAddress(o, "providerRegistry", d.providerRegistry);
        vm.serializeAddress(o, "storageMarket", d.storageMarket);
        string memory json = vm.serializeAddress(o, "storageNFT", d.storageNFT);
        string memory path = vm.envOr(
            "DEPLOYMENT_OUT", string.concat("deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
        console.log("StorageNFT  ", d.storageNFT);
        console.log("PXToken     ", d.pxToken);
        console.log("LinkToken   ", d.link);
        console.log("Operator    ", d.operator);
        console.log("Registry    ", d.providerRegistry);
        console.log("Market      ", d.storageMarket);
        console.log("deployment  ", path);
    }
}
