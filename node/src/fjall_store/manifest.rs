//! The fjall store's manifest: written beside the engine's folder at the first open, it says
//! that the directory holds a database, and which instance (see the [store docs](super)).

use std::path::{Path, PathBuf};

use crate::redb_store::io;
use crate::runtime::frame::excerpt;
use crate::store::StoreError;

/// The manifest's file name inside the data directory.
pub const MANIFEST_FILE: &str = "FJALL-MANIFEST";

/// What the manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The database instance: 16 hex digits, also stored in the database.
    pub(crate) instance: String,
    /// When the database was created, in Unix milliseconds.
    created_unix_ms: u64,
}

impl Manifest {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    pub(crate) fn of(instance: u64, created_unix_ms: u64) -> Self {
        Manifest {
            instance: format!("{instance:016x}"),
            created_unix_ms,
        }
    }

    pub(crate) fn read(dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&format!("cannot read {}", path.display()), e)),
        };
        Self::parse(&text).map(Some).map_err(|e| {
            StoreError::Corrupt(format!(
                "{}: cannot be parsed ({e}); if the database beside it is intact, delete the \
                 manifest and it is written again at the next start",
                path.display()
            ))
        })
    }

    /// Reads the `key = value` lines (a TOML subset; `#` starts a comment).
    fn parse(text: &str) -> Result<Self, String> {
        let mut instance = None;
        let mut created = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not `key = value`: {}", excerpt(line)))?;
            let value = value.trim();
            match key.trim() {
                "engine" if value == "\"fjall\"" => {}
                "engine" => return Err(format!("engine {} is not fjall", excerpt(value))),
                "instance" => {
                    let v = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or_else(|| format!("instance is not a string: {}", excerpt(value)))?;
                    instance = Some(v.to_owned());
                }
                "created_unix_ms" => {
                    created = Some(
                        value
                            .parse::<u64>()
                            .map_err(|e| format!("created_unix_ms: {e}"))?,
                    );
                }
                other => return Err(format!("unknown key {}", excerpt(other))),
            }
        }
        match (instance, created) {
            (Some(instance), Some(created_unix_ms)) => Ok(Manifest {
                instance,
                created_unix_ms,
            }),
            _ => Err("instance or created_unix_ms missing".into()),
        }
    }

    /// Writes the manifest atomically and durably (temporary file, fsync, rename, fsync of the
    /// directory).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let text = format!(
            "# Written when the fjall database beside it was created. While this file exists, a \
             node refuses to start\n# on a missing, empty or different database, so that lost \
             data is never mistaken for a new node.\n# To rebuild the node from its replicas, \
             remove the whole data directory.\nengine = \"fjall\"\ninstance = \"{}\"\n\
             created_unix_ms = {}\n",
            self.instance, self.created_unix_ms
        );
        let fail = |e: std::io::Error| io(&format!("cannot write {}", path.display()), e);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(fail)?;
            f.write_all(text.as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &path).map_err(fail)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "instance {}, created at {} ms after the Unix epoch",
            self.instance, self.created_unix_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_manifest_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::of(0xabc, 42);
        m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(m));
        assert!(
            Manifest::parse("engine = \"redb\"\ninstance = \"1\"\ncreated_unix_ms = 1").is_err()
        );
    }
}
