// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {IpnsName} from "../contracts/libraries/IpnsName.sol";

contract IpnsNameHarness {
    function toKey(bytes calldata name) external pure returns (bytes32) {
        return IpnsName.toKey(name);
    }
}

contract IpnsNameTest is Test {
    IpnsNameHarness internal h = new IpnsNameHarness();

    /// Names from the IPNS spec vectors in ../shared/fixtures/ipns (decoded from base36).
    function test_toText_matchesSpecVectors() public pure {
        assertEq(
            IpnsName.toText(0xd88e0b4e3eee85a7ddff1a5ca5ba283e3df07156003d287cd0a2a4d26d94d024),
            "k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w"
        );
        assertEq(
            IpnsName.toText(0x694cff09afd97a4c8bcf8b791acdf152a2ef5ce3a0c30d142070324792b0d8bb),
            "k51qzi5uqu5dit2ku9mutlfgwyz8u730on38kd10m97m36bjt66my99hb6103f"
        );
    }

    function testFuzz_toKey_roundTrips(bytes32 key) public view {
        vm.assume(key != bytes32(0));
        assertEq(h.toKey(IpnsName.toName(key)), key);
    }

    function test_toKey_rejectsOtherShapes() public view {
        bytes32 key = keccak256("k");
        // secp256k1 key type (0x08 0x02) instead of ed25519
        assertEq(h.toKey(abi.encodePacked(bytes6(0x002408021220), key)), bytes32(0));
        // sha2-256 multihash instead of identity
        assertEq(h.toKey(abi.encodePacked(bytes2(0x1220), key)), bytes32(0));
        // truncated
        assertEq(h.toKey(abi.encodePacked(bytes6(0x002408011220), bytes31(key))), bytes32(0));
    }

    function testFuzz_toText_isBase36Lowercase(bytes32 key) public pure {
        bytes memory text = bytes(IpnsName.toText(key));
        assertEq(text[0], "k");
        assertGe(text.length, 60);
        for (uint256 i = 1; i < text.length; ++i) {
            bytes1 c = text[i];
            assertTrue((c >= "0" && c <= "9") || (c >= "a" && c <= "z"));
        }
    }
}
