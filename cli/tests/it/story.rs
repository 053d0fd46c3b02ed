//! The `make demo` story as a test: `px devnet --story` starts anvil with the contracts,
//! px-store, px-node and px-oracle as processes and runs every step (mint, key, encrypted
//! upload, list, sync through the real Operator, usage equality, time travel, refusal, re-sync,
//! accepted upload, download and compare).
//!
//! The service binaries must sit beside `px` (`cargo test --workspace` builds them all).

use std::process::Command;

#[test]
fn devnet_story_passes_every_step() {
    let px = env!("CARGO_BIN_EXE_px");
    let dir = std::path::Path::new(px).parent().unwrap();
    for bin in ["px-store", "px-node", "px-oracle"] {
        assert!(
            dir.join(bin).is_file(),
            "{bin} is not built beside {px}: run `cargo build --workspace` (make test does)"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(px)
        .args(["devnet", "--story", "--dir"])
        .arg(state.path().join("devnet"))
        .output()
        .expect("px runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "story failed:\n{stdout}\n{stderr}");
    for step in 1..=11 {
        assert!(
            stdout.contains(&format!("[{step:>2}] ok")),
            "step {step} missing:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("all story steps passed"), "{stdout}");
}
