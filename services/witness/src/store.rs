//! The grant state on disk: one small JSON file per array in the state directory,
//! replaced atomically (temp file, fsync, rename, fsync of the directory) so that after a
//! crash at any point the file holds either the old state or the new one, and a grant is
//! answered only once it would survive a power cut.
//!
//! The directory is locked (flock on `.lock`) for as long as the witness runs: two
//! witnesses on one state directory could each grant the same term.

use crate::grant::{Durable, Owner, Refusal};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    format: u32,
    array: String,
    highest_term: u64,
    owner: Option<Owner>,
    last_refused: Option<Refusal>,
}

pub struct Store {
    dir: PathBuf,
    /// Held open for the lock.
    _lock: File,
}

impl Store {
    /// Opens (creating it if needed) and locks the state directory.
    pub fn open(dir: &Path) -> Result<Store, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "{} is in use by another star-witness: two witnesses on one state could grant a term twice",
                dir.display()
            ));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn path(&self, array: &str) -> PathBuf {
        self.dir.join(format!("{array}.json"))
    }

    /// The array's state, `None` if the witness never granted anything for it.
    pub fn load(&self, array: &str) -> Result<Option<Durable>, String> {
        let path = self.path(array);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let bad = |why: String| {
            format!(
                "{}: {why}. The witness will not start on a state it cannot read: it could grant a term it already granted. \
                 Restore the file, or write one with a highest_term above every term the array's controllers know \
                 (`star status`)",
                path.display()
            )
        };
        let d: OnDisk = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if d.format != FORMAT {
            return Err(bad(format!(
                "format {}, this witness reads {FORMAT}",
                d.format
            )));
        }
        if d.array != array {
            return Err(bad(format!("it is the state of array {:?}", d.array)));
        }
        if let Some(o) = d.owner {
            if o.term > d.highest_term {
                return Err(bad("the owner's term is above highest_term".into()));
            }
        }
        Ok(Some(Durable {
            highest_term: d.highest_term,
            owner: d.owner,
            last_refused: d.last_refused,
        }))
    }

    /// Makes `state` durable: when this returns Ok, a crash or power cut cannot lose it.
    pub fn save(&self, array: &str, state: &Durable) -> io::Result<()> {
        let body = serde_json::to_vec_pretty(&OnDisk {
            format: FORMAT,
            array: array.to_string(),
            highest_term: state.highest_term,
            owner: state.owner,
            last_refused: state.last_refused.clone(),
        })
        .map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(".{array}.json.tmp"));
        {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path(array))?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Reason;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("star-witness-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saves_and_loads_and_locks() {
        let dir = scratch("round");
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.load("a").unwrap(), None);
        let state = Durable {
            highest_term: 7,
            owner: Some(Owner { node: 2, term: 7 }),
            last_refused: Some(Refusal {
                node: 1,
                term: 6,
                reason: Reason::HeldByOther,
                at_unix_ms: 5,
            }),
        };
        s.save("a", &state).unwrap();
        assert_eq!(s.load("a").unwrap(), Some(state.clone()));
        assert_eq!(s.load("b").unwrap(), None);
        assert!(!dir.join(".a.json.tmp").exists());
        let e = Store::open(&dir).err().expect("locked");
        assert!(e.contains("in use by another star-witness"), "{e}");
        drop(s);
        assert_eq!(Store::open(&dir).unwrap().load("a").unwrap(), Some(state));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_state_is_an_error_not_a_fresh_start() {
        let dir = scratch("bad");
        let s = Store::open(&dir).unwrap();
        for bad in [
            "",
            "{",
            "{\"format\":1,\"array\":\"b\",\"highest_term\":1,\"owner\":null,\"last_refused\":null}",
            "{\"format\":2,\"array\":\"a\",\"highest_term\":1,\"owner\":null,\"last_refused\":null}",
            "{\"format\":1,\"array\":\"a\",\"highest_term\":1,\"owner\":{\"node\":1,\"term\":2},\"last_refused\":null}",
        ] {
            fs::write(dir.join("a.json"), bad).unwrap();
            let e = s.load("a").expect_err(bad);
            assert!(e.contains("will not start"), "{e}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
