// SPDX-License-Identifier: MIT
// Operator pins solc 0.8.19 exactly while OpenZeppelin v5 needs >= 0.8.20, so nothing here may
// import it next to our contracts. This file only makes forge compile the real Chainlink
// contracts; scripts and tests deploy them from their artifacts with `vm.deployCode`.
pragma solidity 0.8.19;

import {Operator} from "@chainlink/contracts/src/v0.8/operatorforwarder/Operator.sol";
import {LinkToken} from "@chainlink/contracts/src/v0.8/shared/token/ERC677/LinkToken.sol";

/// @dev Names the artifacts this file exists to build.
abstract contract ChainlinkDeployables {
    Operator internal _operator;
    LinkToken internal _linkToken;
}
