// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Vm} from "forge-std/Vm.sol";

import {PXToken} from "../contracts/PXToken.sol";
import {IProviderRegistry} from "../contracts/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {StorageNFTRenderer} from "../contracts/StorageNFTRenderer.sol";
import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";

/// @dev The admin calls of Chainlink's LinkToken (BurnMintERC677) the deployment needs.
interface ILinkTokenAdmin {
    function grantMintRole(address minter) external;
    function mint(address account, uint256 amount) external;
    function transfer(address to, uint256 amount) external returns (bool);
}

/// @dev The admin call of Chainlink's Operator the deployment needs.
interface IOperatorAdmin {
    function setAuthorizedSenders(address[] calldata senders) external;
}

/// @dev StorageNFT's interface plus the role grant the deployment needs.
interface IStorageNFTDeploy is IStorageNFT {
    function grantRole(bytes32 role, address account) external;
}

/// @notice Parameters of the provider registry and the storage market.
struct MarketParams {
    uint96 minStake;
    uint40 unbondingDelay;
    uint16 feeBps;
    IStorageMarket.Config config;
}

/// @title Deployer
/// @notice The one deployment routine, shared by `script/Deploy.s.sol` and the tests, so tests
/// run against exactly what gets deployed. The caller (the broadcaster in a script, the test
/// contract in a test) becomes the admin of everything it deploys.
/// @dev Chainlink's Operator pins solc 0.8.19 and cannot be imported beside OpenZeppelin v5, so
/// LinkToken and Operator are deployed from their artifacts (see contracts/vendor). StorageNFT is
/// deployed from its artifact too: it compiles through the IR pipeline, which every file that
/// imports it would have to share, and that would make the tests compile for minutes. The
/// registry and the market are deployed from their artifacts as well, so that nothing else
/// recompiles when they change (the mutation check builds one mutant after another).
abstract contract Deployer {
    Vm private constant _VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice Job (spec) id of the sync job on devnets: a Chainlink external job id.
    bytes32 internal constant DEVNET_JOB_ID = "8f3e2b1c4d5a4e6f9a0b1c2d3e4f5a6b";
    /// @notice LINK paid per sync request on devnets.
    uint256 internal constant DEVNET_FEE = 0.1 ether;
    /// @notice StorageNFT's role of storage nodes' keys.
    bytes32 internal constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice LINK the StorageNFT contract is funded with on devnets.
    uint256 internal constant DEVNET_LINK_FUNDING = 1000 ether;
    /// @notice Minimum seconds between two sync requests for a token on devnets.
    uint256 internal constant DEVNET_MIN_SYNC_INTERVAL = 60;
    /// @notice Sync requests included with each purchase of the Basic plan (Pro: ten times).
    uint16 internal constant DEVNET_SYNC_CREDITS = 365;

    /// @notice Inputs of a deployment.
    struct DeployConfig {
        address admin; // must be the caller
        address oracleSender; // authorized to fulfill on a freshly deployed Operator
        address registrar; // granted REGISTRAR_ROLE (0: none)
        address link; // existing LINK (0: deploy LinkToken)
        address operator; // existing Operator (0: deploy one)
        address pxToken; // existing PXToken (0: deploy one)
        bytes32 jobId;
        uint256 fee;
        uint256 minSyncInterval;
        uint256 linkFunding; // LINK moved from the admin to StorageNFT
    }

    /// @notice Addresses of a deployment.
    struct Deployment {
        address link;
        address operator;
        address pxToken;
        address storageNFT;
        uint256 startBlock;
        address providerRegistry;
        address storageMarket;
    }

    /// @notice Market parameters on devnets (and the default elsewhere): periods of 100 blocks
    /// (assumed 2 s each), proofs due within 50 blocks, 4 challenges per period, 3 misses
    /// breach a deal, 10 PX slashed per miss (10% bounty), 2% fee, 100 PX minimum stake, 1 day
    /// unbonding.
    function devnetMarketParams() internal pure returns (MarketParams memory) {
        return MarketParams({
            minStake: 100 ether,
            unbondingDelay: 1 days,
            feeBps: 200,
            config: IStorageMarket.Config({
                periodBlocks: 100,
                proofWindow: 50,
                challengeCount: 4,
                maxMisses: 3,
                blockTime: 2,
                bountyBps: 1000,
                slashPerMiss: 10 ether
            })
        });
    }

    /// @notice Deploys the provider registry and the storage market for `nft` and wires them:
    /// the registry's market, and StorageNFT's market for plan shares (the caller must be the
    /// admin of all three).
    function deployMarket(address admin, address nft, address pxToken, MarketParams memory p)
        internal
        returns (address registry, address market)
    {
        registry = _VM.deployCode(
            "ProviderRegistry.sol:ProviderRegistry",
            abi.encode(admin, pxToken, p.minStake, p.unbondingDelay)
        );
        market = _VM.deployCode(
            "StorageMarket.sol:StorageMarket",
            abi.encode(admin, nft, registry, pxToken, p.config, p.feeBps)
        );
        IProviderRegistry(registry).setMarket(market);
        IStorageNFT(nft).setMarket(market);
    }

    /// @notice A devnet configuration: everything deployed fresh.
    function devnetConfig(address admin, address oracleSender, address registrar)
        internal
        pure
        returns (DeployConfig memory)
    {
        return DeployConfig({
            admin: admin,
            oracleSender: oracleSender,
            registrar: registrar,
            link: address(0),
            operator: address(0),
            pxToken: address(0),
            jobId: DEVNET_JOB_ID,
            fee: DEVNET_FEE,
            minSyncInterval: DEVNET_MIN_SYNC_INTERVAL,
            linkFunding: DEVNET_LINK_FUNDING
        });
    }

    /// @notice Deploys (or reuses) LINK, Operator and PXToken, then StorageNFT with the
    /// default plans, funds it with LINK and grants the registrar role, then the provider
    /// registry and the storage market (`deployMarket`).
    function deploy(DeployConfig memory c) internal returns (Deployment memory d) {
        d.startBlock = block.number;
        d.link = c.link;
        if (d.link == address(0)) {
            d.link = _VM.deployCode("LinkToken.sol:LinkToken");
            ILinkTokenAdmin(d.link).grantMintRole(c.admin);
            ILinkTokenAdmin(d.link).mint(c.admin, c.linkFunding);
        }
        d.operator = c.operator;
        if (d.operator == address(0)) {
            d.operator = _VM.deployCode("Operator.sol:Operator", abi.encode(d.link, c.admin));
            address[] memory senders = new address[](1);
            senders[0] = c.oracleSender;
            IOperatorAdmin(d.operator).setAuthorizedSenders(senders);
        }
        d.pxToken = c.pxToken == address(0) ? address(new PXToken(c.admin)) : c.pxToken;

        d.storageNFT = _VM.deployCode(
            "StorageNFT.sol:StorageNFT",
            abi.encode(
                c.admin,
                IERC20(d.pxToken),
                d.link,
                d.operator,
                c.jobId,
                c.fee,
                c.minSyncInterval,
                new StorageNFTRenderer()
            )
        );
        IStorageNFTDeploy nft = IStorageNFTDeploy(d.storageNFT);
        _createDefaultPlans(nft);
        nft.setQuotaUnitPrice(10 ether, 0.001 ether);
        if (c.registrar != address(0)) nft.grantRole(REGISTRAR_ROLE, c.registrar);
        if (c.linkFunding != 0) {
            require(ILinkTokenAdmin(d.link).transfer(d.storageNFT, c.linkFunding), "LINK funding");
        }
        (d.providerRegistry, d.storageMarket) =
            deployMarket(c.admin, d.storageNFT, d.pxToken, devnetMarketParams());
    }

    /// @notice Plans 1 (free, 100 MiB, no expiry), 2 (10 GiB a year, 365 syncs) and 3 (1 TiB a
    /// year, 3650 syncs).
    function _createDefaultPlans(IStorageNFT nft) private {
        nft.createPlan(
            IStorageNFT.Plan({
                quota: 100 << 20,
                validity: 0,
                syncCredits: 0, // no expiry: syncs are rate-limited instead
                mintable: true,
                renewable: false,
                free: true,
                escrowShareBps: 0,
                tokenPrice: 0,
                nativePrice: 0
            })
        );
        nft.createPlan(
            IStorageNFT.Plan({
                quota: 10 << 30,
                validity: 365 days,
                syncCredits: DEVNET_SYNC_CREDITS,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: 0,
                tokenPrice: 100 ether,
                nativePrice: 0.01 ether
            })
        );
        nft.createPlan(
            IStorageNFT.Plan({
                quota: 1 << 40,
                validity: 365 days,
                syncCredits: 10 * DEVNET_SYNC_CREDITS,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: 0,
                tokenPrice: 5000 ether,
                nativePrice: 0.5 ether
            })
        );
    }
}
