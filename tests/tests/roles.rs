//! The role authority in the image: star-heartbeat on a controller and star-witness on
//! the witness, each booted from the same qemu image, with nothing given by hand. A lone
//! controller whose peer never appeared must become active, but only the safe way: after
//! peer_dead, a poison pill and msgwait, and with the witness's grant.

use star_lab::array::{controller_with, free_port, probe, shared_disk, wait_for_alua, TESTER};
use star_lab::scratch;
use std::time::{Duration, Instant};

#[test]
fn a_lone_controller_takes_the_array_with_the_witness_grant() {
    let dir = scratch("roles-lone");
    // Initialized, and no ownership record: nobody has ever owned the array.
    let shared = shared_disk(&dir);
    let witness_port = free_port();
    let mut witness = star_lab::array::witness(witness_port, &dir);
    let serial = witness.serial();
    for line in [
        "star-heartbeat: this node is the witness",
        "star-target: this node is the witness: it exports nothing",
        "array star-test: no saved state",
    ] {
        assert!(serial.contains(line), "{line:?} missing:\n{serial}");
    }

    let port = free_port();
    let booted = Instant::now();
    let mut c1 = controller_with(
        1,
        &shared,
        port,
        &dir,
        &format!("star.witness.url=http://10.0.2.2:{witness_port}"),
    );
    // Defaults of star.toml: peer_dead 10 s, watchdog 10 s, so msgwait 20 s; the
    // witness grants nothing in its first 10 s. Generous for TCG on a loaded machine.
    c1.wait_for("role promoting → active", Duration::from_secs(240));
    let took = booted.elapsed();
    let serial = c1.serial();
    for line in [
        // The hardware watchdog is what the peer's wait counts on.
        "hardware watchdog /dev/watchdog: timeout 10 s",
        "writing PoisonPill",
        "target promote, term 1",
    ] {
        assert!(serial.contains(line), "{line:?} missing:\n{serial}");
    }
    assert!(
        took > Duration::from_secs(30),
        "active {took:?} after boot: before peer_dead + msgwait could have passed"
    );
    // Group 1 Active/Optimized, group 2 (the peer, never seen) Unavailable.
    wait_for_alua(port, [0, 3], Duration::from_secs(60));
    assert_eq!(probe("write", port, 0, TESTER)["ok"], true);
    witness.wait_for("granted", Duration::from_secs(10));
    c1.power_off();
    witness.power_off();
}
