//! The metadata records a controller reads from the shared disk, fed random and damaged
//! blocks: a parser may refuse, it must never panic, and a damaged record is never taken
//! for a good one (DESIGN.md §4: "never half-trusted").

use proptest::prelude::*;
use star_disk::buf::Block;
use star_disk::ownership::Ownership;
use star_heartbeat::records::{decode_mail, decode_slot, encode_mail, encode_slot};
use star_heartbeat::role::{Mail, Role, Slot};

fn block_from(bytes: &[u8]) -> Block {
    let mut b = Block::zeroed();
    let n = bytes.len().min(b.0.len());
    b.0[..n].copy_from_slice(&bytes[..n]);
    b
}

fn slot(seq: u64) -> Slot {
    Slot {
        incarnation: 1_767_225_600_000,
        seq,
        role: Role::Active,
        term: 4,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_blocks_are_refused_or_empty(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let b = block_from(&bytes);
        // Never written (all zero) is the only way random bytes may read as "nothing".
        match decode_slot(1, &b) {
            Ok(Some(s)) => prop_assert!(false, "random bytes read as a slot: {s:?}"),
            Ok(None) => prop_assert!(b.0.iter().all(|x| *x == 0)),
            Err(_) => {}
        }
        match decode_mail(&b) {
            Ok(Mail::Empty) => prop_assert!(b.0.iter().all(|x| *x == 0)),
            Ok(m) => prop_assert!(false, "random bytes read as mail: {m:?}"),
            Err(_) => {}
        }
        let _ = Ownership::decode(&b);
    }

    #[test]
    fn any_damaged_byte_of_a_good_record_is_detected(
        seq in 1u64..1_000_000,
        at in 0usize..4096,
        flip in 1u8..=255,
    ) {
        let mut s = encode_slot(2, &slot(seq), Some("198.51.100.12:7401".parse().unwrap()));
        s.0[at] ^= flip;
        prop_assert!(decode_slot(2, &s).is_err(), "damaged slot byte {at} accepted");

        let mut m = encode_mail(Mail::PoisonPill { term: seq });
        m.0[at] ^= flip;
        prop_assert!(decode_mail(&m).is_err(), "damaged mailbox byte {at} accepted");

        let own = Ownership { term: seq, owner: 1, peer_healthy: true };
        let mut o = own.encode();
        o.0[at] ^= flip;
        prop_assert!(Ownership::decode(&o).is_err(), "damaged ownership byte {at} accepted");
    }
}

#[test]
fn good_records_round_trip_and_a_slot_is_checked_against_its_node() {
    let s = encode_slot(2, &slot(9), None);
    assert_eq!(decode_slot(2, &s), Ok(Some(slot(9))));
    // Controller 2's slot read where controller 1's should be: refused, not believed.
    assert!(decode_slot(1, &s).is_err());
    let m = encode_mail(Mail::HandOverAck { term: 3 });
    assert_eq!(decode_mail(&m), Ok(Mail::HandOverAck { term: 3 }));
}
