// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Test} from "forge-std/Test.sol";

import {PXToken} from "../contracts/PXToken.sol";

contract PXTokenTest is Test {
    PXToken internal px;
    address internal alice = makeAddr("alice");

    function setUp() public {
        px = new PXToken(address(this));
    }

    function test_mint_byMinter() public {
        px.mint(alice, 5 ether);
        assertEq(px.balanceOf(alice), 5 ether);
        assertEq(px.totalSupply(), 5 ether);
    }

    function test_RevertWhen_mintByStranger() public {
        bytes32 role = px.MINTER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role
            )
        );
        vm.prank(alice);
        px.mint(alice, 1);
    }

    function testFuzz_permit_setsAllowance(uint256 amount, uint256 ownerKey) public {
        ownerKey = bound(ownerKey, 1, 1e40);
        address owner = vm.addr(ownerKey);
        address spender = makeAddr("spender");
        uint256 deadline = block.timestamp + 1;
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                px.DOMAIN_SEPARATOR(),
                keccak256(
                    abi.encode(
                        keccak256(
                            "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                        ),
                        owner,
                        spender,
                        amount,
                        px.nonces(owner),
                        deadline
                    )
                )
            )
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(ownerKey, digest);
        px.permit(owner, spender, amount, deadline, v, r, s);
        assertEq(px.allowance(owner, spender), amount);
        assertEq(px.nonces(owner), 1);
    }
}
