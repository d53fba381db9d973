//! Which address changes take the node from what the kernel lists to holding the floating
//! address, or to not holding it: pure, so every starting point is tested.
//!
//! Holding it means: on the client interface, with the configured prefix length, usable
//! (not an IPv6 address whose duplicate address detection failed), and on no other
//! interface. A copy with another prefix or on another interface is ours too (nobody else
//! may use the floating address), left by hand or by an older configuration: acquire
//! removes it, release removes every copy.

/// Where a copy of the floating address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// The interface's ifindex.
    pub index: u32,
    pub prefix_len: u8,
    /// False for an IPv6 address whose duplicate address detection failed.
    pub usable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add { index: u32, prefix_len: u8 },
    Remove { index: u32, prefix_len: u8 },
}

fn remove(c: &Copy) -> Change {
    Change::Remove {
        index: c.index,
        prefix_len: c.prefix_len,
    }
}

fn is_wanted(c: &Copy, index: u32, prefix_len: u8) -> bool {
    c.index == index && c.prefix_len == prefix_len && c.usable
}

/// Held: the wanted copy is there and no other.
pub fn held(found: &[Copy], index: u32, prefix_len: u8) -> bool {
    found.iter().any(|c| is_wanted(c, index, prefix_len))
        && found.iter().all(|c| is_wanted(c, index, prefix_len))
}

/// The changes for acquire, in order. Wrong copies on the client interface go first: the
/// kernel keeps one IPv6 address per interface whatever its prefix, so the right one can
/// only be added once the wrong one is gone. Copies elsewhere go after the add, so that
/// the node never holds no copy at all in between.
pub fn acquire(found: &[Copy], index: u32, prefix_len: u8) -> Vec<Change> {
    let mut changes: Vec<Change> = found
        .iter()
        .filter(|c| c.index == index && !is_wanted(c, index, prefix_len))
        .map(remove)
        .collect();
    if !found.iter().any(|c| is_wanted(c, index, prefix_len)) {
        changes.push(Change::Add { index, prefix_len });
    }
    changes.extend(found.iter().filter(|c| c.index != index).map(remove));
    changes
}

/// The changes for release: every copy goes.
pub fn release(found: &[Copy]) -> Vec<Change> {
    found.iter().map(remove).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: u32 = 2;
    const OTHER: u32 = 3;

    fn copy(index: u32, prefix_len: u8) -> Copy {
        Copy {
            index,
            prefix_len,
            usable: true,
        }
    }

    #[test]
    fn nothing_there_is_one_add() {
        assert_eq!(
            acquire(&[], CLIENT, 24),
            vec![Change::Add {
                index: CLIENT,
                prefix_len: 24
            }]
        );
        assert!(!held(&[], CLIENT, 24));
        assert!(
            release(&[]).is_empty(),
            "releasing what is not held changes nothing"
        );
    }

    #[test]
    fn held_already_is_no_change() {
        let found = [copy(CLIENT, 24)];
        assert!(held(&found, CLIENT, 24));
        assert!(acquire(&found, CLIENT, 24).is_empty());
        assert_eq!(
            release(&found),
            vec![Change::Remove {
                index: CLIENT,
                prefix_len: 24
            }]
        );
    }

    #[test]
    fn a_wrong_prefix_goes_before_the_add() {
        let found = [copy(CLIENT, 32)];
        assert!(!held(&found, CLIENT, 24));
        assert_eq!(
            acquire(&found, CLIENT, 24),
            vec![
                Change::Remove {
                    index: CLIENT,
                    prefix_len: 32
                },
                Change::Add {
                    index: CLIENT,
                    prefix_len: 24
                },
            ]
        );
    }

    #[test]
    fn a_copy_elsewhere_goes_after_the_add() {
        let found = [copy(OTHER, 24)];
        assert!(!held(&found, CLIENT, 24));
        assert_eq!(
            acquire(&found, CLIENT, 24),
            vec![
                Change::Add {
                    index: CLIENT,
                    prefix_len: 24
                },
                Change::Remove {
                    index: OTHER,
                    prefix_len: 24
                },
            ]
        );
        // Held on the client interface and elsewhere too: not held as configured.
        let both = [copy(CLIENT, 24), copy(OTHER, 24)];
        assert!(!held(&both, CLIENT, 24));
        assert_eq!(
            acquire(&both, CLIENT, 24),
            vec![Change::Remove {
                index: OTHER,
                prefix_len: 24
            }]
        );
        assert_eq!(release(&both).len(), 2);
    }

    #[test]
    fn an_unusable_copy_is_replaced() {
        let failed = Copy {
            usable: false,
            ..copy(CLIENT, 64)
        };
        assert!(!held(&[failed], CLIENT, 64));
        assert_eq!(
            acquire(&[failed], CLIENT, 64),
            vec![
                Change::Remove {
                    index: CLIENT,
                    prefix_len: 64
                },
                Change::Add {
                    index: CLIENT,
                    prefix_len: 64
                },
            ]
        );
    }

    #[test]
    fn applying_the_plan_ends_held_from_any_start() {
        // Every mix of up to three copies over two interfaces and two prefixes, usable or
        // not: applying acquire's changes in order leaves exactly the wanted copy, and
        // release's leaves none.
        let kinds = [
            copy(CLIENT, 24),
            copy(CLIENT, 32),
            copy(OTHER, 24),
            Copy {
                usable: false,
                ..copy(CLIENT, 24)
            },
        ];
        for mask in 0u32..(1 << kinds.len()) {
            let found: Vec<Copy> = (0..kinds.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| kinds[i])
                .collect();
            // An interface has one copy per prefix length at most.
            if found.iter().enumerate().any(|(i, a)| {
                found[i + 1..]
                    .iter()
                    .any(|b| (a.index, a.prefix_len) == (b.index, b.prefix_len))
            }) {
                continue;
            }
            let mut state = found.clone();
            for change in acquire(&found, CLIENT, 24) {
                match change {
                    Change::Add { index, prefix_len } => {
                        assert!(
                            !state.iter().any(|c| c.index == index),
                            "{found:?}: add onto an interface that still has a copy"
                        );
                        state.push(copy(index, prefix_len));
                    }
                    Change::Remove { index, prefix_len } => {
                        let before = state.len();
                        state.retain(|c| (c.index, c.prefix_len) != (index, prefix_len));
                        assert_eq!(state.len(), before - 1, "{found:?}: removes what is there");
                    }
                }
            }
            assert!(held(&state, CLIENT, 24), "{found:?} -> {state:?}");
            assert!(
                acquire(&state, CLIENT, 24).is_empty(),
                "idempotent: {found:?}"
            );
            let mut state = found.clone();
            for change in release(&found) {
                if let Change::Remove { index, prefix_len } = change {
                    state.retain(|c| (c.index, c.prefix_len) != (index, prefix_len));
                }
            }
            assert!(state.is_empty(), "{found:?}");
        }
    }
}
