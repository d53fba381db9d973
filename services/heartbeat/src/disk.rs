//! The shared disk as star-heartbeat uses it: its own slot, the peer's slot, both
//! mailboxes and the ownership record, each one 4 KiB block read or written with
//! O_DIRECT|O_DSYNC (star-disk's `Disk`), behind the fault layer.
//!
//! [`spawn_worker`] runs the I/O on a thread of its own, one request at a time, and
//! reports each completion as a role [`Event`]: a disk that hangs blocks that thread
//! only. The role machine notices a write that does not complete (it knows when it asked
//! for it) and fences itself; it never waits.

use crate::fault::Fault;
use crate::records;
use crate::role::{Event, Mail, Owner, Slot};
use star_core::heartbeat_status::TcpConnection;
use star_disk::buf::Block;
use star_disk::io::{Access, Disk};
use star_disk::layout::{heartbeat_block, mailbox_block, meta_block_offset};
use star_disk::ownership::{self, Ownership};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};

/// A disk request: the subset of the role machine's actions that touch the disk.
#[derive(Debug, Clone)]
pub enum Job {
    WriteHeartbeat(Slot),
    ReadPeerSlot,
    ReadMailbox,
    ReadPeerMailbox,
    ReadOwnership,
    WriteMailbox {
        node: u8,
        mail: Mail,
    },
    WriteOwnership {
        term: u64,
        owner: u8,
        peer_healthy: bool,
    },
}

pub struct SharedDisk {
    disk: Disk,
    me: u8,
    fault: Fault,
    /// Written into our slot: where the peer is to send its UDP heartbeats.
    advertise: Option<SocketAddr>,
    /// The address in the peer's slot when it last changed, until the worker reports it.
    peer_address: Cell<Option<SocketAddr>>,
    peer_address_reported: Cell<Option<SocketAddr>>,
    /// The floating address: our client connections on it go into our slot.
    floating: Option<std::net::IpAddr>,
    /// The client connections the peer's slot listed last, until the worker reports them.
    peer_conns: std::cell::RefCell<Vec<TcpConnection>>,
    peer_conns_reported: std::cell::RefCell<Vec<TcpConnection>>,
}

/// What the worker says besides the event: things for the log, and the peer's
/// heartbeat address as its slot gives it.
pub enum Report {
    Event(Event),
    Log(String),
    PeerAddress(SocketAddr),
    /// The client connections in the peer's slot, each time the list changes to a
    /// non-empty one (an empty list says nothing the last one did not).
    PeerConnections(Vec<TcpConnection>),
}

impl SharedDisk {
    pub fn open(
        path: &Path,
        me: u8,
        fault: Fault,
        advertise: Option<SocketAddr>,
    ) -> Result<SharedDisk, String> {
        let disk = Disk::open(path, Access::ReadWrite).map_err(|e| e.to_string())?;
        Ok(SharedDisk {
            disk,
            me,
            fault,
            advertise,
            peer_address: Cell::new(None),
            peer_address_reported: Cell::new(None),
            floating: None,
            peer_conns: Default::default(),
            peer_conns_reported: Default::default(),
        })
    }

    /// Lists our client connections on `floating` in every slot we write.
    pub fn with_floating(mut self, floating: Option<std::net::IpAddr>) -> SharedDisk {
        self.floating = floating;
        self
    }

    /// The peer's client connections, once each time its slot lists a new set.
    fn new_peer_connections(&self) -> Option<Vec<TcpConnection>> {
        let seen = self.peer_conns.borrow();
        if !seen.is_empty() && *seen != *self.peer_conns_reported.borrow() {
            *self.peer_conns_reported.borrow_mut() = seen.clone();
            return Some(seen.clone());
        }
        None
    }

    /// The peer's heartbeat address, once each time its slot names a new one.
    fn new_peer_address(&self) -> Option<SocketAddr> {
        let seen = self.peer_address.get();
        if seen.is_some() && seen != self.peer_address_reported.get() {
            self.peer_address_reported.set(seen);
            return seen;
        }
        None
    }

    fn peer(&self) -> u8 {
        3 - self.me
    }

    fn read(&self, block: u64, what: &str) -> std::io::Result<Block> {
        self.fault.gate(what)?;
        self.disk
            .read_block(meta_block_offset(block))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn write(&self, block: u64, data: &Block, what: &str) -> std::io::Result<()> {
        self.fault.gate(what)?;
        self.disk
            .write_block(meta_block_offset(block), data)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// A node's slot; `Ok(None)` with a log line when it is corrupt.
    pub fn read_slot(&self, node: u8, log: &mut Vec<String>) -> std::io::Result<Option<Slot>> {
        let b = self.read(heartbeat_block(node).expect("node 1 or 2"), "slot read")?;
        Ok(match records::decode_slot_with(node, &b) {
            Ok(Some((slot, extras))) => {
                if node != self.me && extras.addr.is_some() {
                    self.peer_address.set(extras.addr);
                }
                if node != self.me {
                    *self.peer_conns.borrow_mut() = extras.conns;
                }
                Some(slot)
            }
            Ok(None) => None,
            Err(why) => {
                log.push(format!("{why}: read as missing, never trusted"));
                None
            }
        })
    }

    fn read_mail(&self, node: u8, log: &mut Vec<String>) -> std::io::Result<Mail> {
        let b = self.read(mailbox_block(node).expect("node 1 or 2"), "mailbox read")?;
        Ok(records::decode_mail(&b).unwrap_or_else(|why| {
            log.push(format!("{why} (node {node}): read as empty, never trusted"));
            Mail::Empty
        }))
    }

    fn read_ownership(&self, log: &mut Vec<String>) -> std::io::Result<Option<Owner>> {
        self.fault.gate("ownership read")?;
        let block = self
            .disk
            .read_block(ownership::OFFSET)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(match Ownership::decode(&block) {
            Ok(o) => o.map(|o| Owner {
                term: o.term,
                owner: o.owner,
            }),
            Err(why) => {
                log.push(format!("{why}: read as missing, never trusted"));
                None
            }
        })
    }

    /// Runs one job; returns the event that reports it and lines for the log.
    pub fn run(&self, job: Job, log: &mut Vec<String>) -> Event {
        let me = self.me;
        match job {
            Job::WriteHeartbeat(slot) => {
                let started = crate::daemon::now();
                // A few hundred bytes from /proc each interval, on the active only in
                // practice: only the holder of the floating address has connections on it.
                let conns = self
                    .floating
                    .map(crate::connections::on)
                    .unwrap_or_default();
                let block = records::encode_slot_with(
                    me,
                    &slot,
                    &records::SlotExtras {
                        addr: self.advertise,
                        conns,
                    },
                );
                match self.write(heartbeat_block(me).expect("1 or 2"), &block, "slot write") {
                    Ok(()) => Event::HeartbeatWritten {
                        latency: crate::daemon::now().saturating_sub(started),
                    },
                    Err(e) => {
                        log.push(format!("own heartbeat write failed: {e}"));
                        Event::HeartbeatWriteFailed
                    }
                }
            }
            Job::ReadPeerSlot => match self.read_slot(self.peer(), log) {
                Ok(s) => Event::PeerSlotRead(s),
                Err(e) => {
                    log.push(format!("peer slot read failed: {e}"));
                    Event::PeerSlotReadFailed
                }
            },
            Job::ReadMailbox => match self.read_mail(me, log) {
                Ok(m) => Event::MailboxRead(m),
                Err(e) => {
                    log.push(format!("mailbox read failed: {e}"));
                    Event::MailboxReadFailed
                }
            },
            Job::ReadPeerMailbox => match self.read_mail(self.peer(), log) {
                Ok(m) => Event::PeerMailboxRead(m),
                Err(e) => {
                    log.push(format!("peer mailbox read failed: {e}"));
                    Event::PeerMailboxReadFailed
                }
            },
            Job::ReadOwnership => match self.read_ownership(log) {
                Ok(o) => Event::OwnershipRead(o),
                Err(e) => {
                    log.push(format!("ownership read failed: {e}"));
                    Event::OwnershipReadFailed
                }
            },
            Job::WriteMailbox { node, mail } => {
                // Written and read back: the machine counts a message as delivered only
                // once the disk holds it.
                let block = records::encode_mail(mail);
                let at = mailbox_block(node).expect("1 or 2");
                let ok = match self.write(at, &block, "mailbox write") {
                    Ok(()) => match self.read(at, "mailbox read-back") {
                        Ok(back) => back.0 == block.0,
                        Err(e) => {
                            log.push(format!("mailbox read-back failed: {e}"));
                            false
                        }
                    },
                    Err(e) => {
                        log.push(format!("mailbox write failed: {e}"));
                        false
                    }
                };
                Event::MailboxWritten { ok }
            }
            Job::WriteOwnership {
                term,
                owner,
                peer_healthy,
            } => {
                let rec = Ownership {
                    term,
                    owner,
                    peer_healthy,
                };
                let r = self.fault.gate("ownership write").and_then(|()| {
                    self.disk
                        .write_block(ownership::OFFSET, &rec.encode())
                        .map_err(|e| std::io::Error::other(e.to_string()))
                });
                if let Err(e) = &r {
                    log.push(format!("ownership write failed: {e}"));
                }
                Event::OwnershipWritten { ok: r.is_ok() }
            }
        }
    }
}

/// Runs jobs in order until `jobs` closes, sending each completion to `events`.
pub fn spawn_worker(disk: SharedDisk, jobs: Receiver<Job>, events: Sender<crate::daemon::Msg>) {
    std::thread::Builder::new()
        .name("disk".into())
        .spawn(move || {
            for job in jobs {
                let mut log = Vec::new();
                let ev = disk.run(job, &mut log);
                for line in log {
                    let _ = events.send(crate::daemon::Msg::Disk(Report::Log(line)));
                }
                if let Some(addr) = disk.new_peer_address() {
                    let _ = events.send(crate::daemon::Msg::Disk(Report::PeerAddress(addr)));
                }
                if let Some(conns) = disk.new_peer_connections() {
                    let _ = events.send(crate::daemon::Msg::Disk(Report::PeerConnections(conns)));
                }
                if events
                    .send(crate::daemon::Msg::Disk(Report::Event(ev)))
                    .is_err()
                {
                    return;
                }
            }
        })
        .expect("spawn the disk thread");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::{Role, Slot};

    /// The active's client connections go through the shared disk to its peer: one node
    /// writes its slot with what the kernel lists on its floating address, the other
    /// reads it and reports the list, once.
    #[test]
    fn the_actives_client_connections_reach_the_peer_through_its_slot() {
        let path = std::env::temp_dir().join(format!("star-hb-conns-{}.img", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(80 << 20)
            .unwrap();
        star_disk::init::init(
            &path,
            &star_disk::init::InitRequest::new("star-lab", 1, 1_800_000_000),
        )
        .unwrap();
        // A real connection whose serving end is on the "floating" address.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_served, _) = listener.accept().unwrap();
        let want = TcpConnection {
            local: listener.local_addr().unwrap(),
            remote: client.local_addr().unwrap(),
        };

        let active = SharedDisk::open(&path, 1, Fault::none(), None)
            .unwrap()
            .with_floating(Some("127.0.0.1".parse().unwrap()));
        let standby = SharedDisk::open(&path, 2, Fault::none(), None).unwrap();
        let slot = Slot {
            incarnation: 7,
            seq: 1,
            role: Role::Active,
            term: 1,
        };
        let mut log = Vec::new();
        active.run(Job::WriteHeartbeat(slot), &mut log);
        assert!(matches!(
            standby.run(Job::ReadPeerSlot, &mut log),
            Event::PeerSlotRead(Some(_))
        ));
        let reported = standby
            .new_peer_connections()
            .expect("the list is reported");
        assert!(reported.contains(&want), "{reported:?}");
        // Read again without a new write: nothing new to report.
        standby.run(Job::ReadPeerSlot, &mut log);
        assert_eq!(standby.new_peer_connections(), None);
        assert!(log.is_empty(), "{log:?}");
        std::fs::remove_file(&path).unwrap();
    }
}
