//! The manifest a store writes beside its database at the first open: it says that the directory
//! holds a database, and which instance, so that a node refuses to start on a missing, emptied or
//! replaced database instead of mistaking lost data for a new node. Shared by the redb and fjall
//! stores; each names its file, its engine line and its wording in a [`Kind`].
//!
//! The manifest's format is versioned by a `format = N` line; a manifest without one is format 1,
//! the only one so far, and this version still writes none (so that a node of an earlier version,
//! which refuses unknown keys, reads it after a downgrade). A later format writes `format = 2` or
//! more, and this version refuses it as [`StoreError::UnknownVersion`] rather than misread it.

use std::path::{Path, PathBuf};

use crate::on_disk::io;
use crate::runtime::frame::excerpt;
use crate::store::StoreError;

/// One store's manifest: file name, engine line, wording.
#[derive(Debug)]
pub(crate) struct Kind {
    /// The file name inside the data directory.
    pub(crate) file: &'static str,
    /// The `engine = "..."` line it writes and requires if present (`None`: no such line).
    pub(crate) engine: Option<&'static str>,
    /// How error messages name the database beside it.
    pub(crate) database: &'static str,
    /// The comment written above the values.
    pub(crate) header: &'static str,
}

/// The manifest format this version reads and writes (an absent `format` line).
pub(crate) const FORMAT: u64 = 1;

/// Why a manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// A `format` this version does not read.
    UnknownFormat(u64),
    /// Not a manifest.
    Malformed(String),
}

impl From<String> for ParseError {
    fn from(why: String) -> Self {
        ParseError::Malformed(why)
    }
}

/// What the manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The database instance: 16 hex digits, also stored in the database.
    pub(crate) instance: String,
    /// When the database was created, in Unix milliseconds.
    created_unix_ms: u64,
}

impl Manifest {
    pub(crate) fn path(kind: &Kind, dir: &Path) -> PathBuf {
        dir.join(kind.file)
    }

    pub(crate) fn of(instance: u64, created_unix_ms: u64) -> Self {
        Manifest {
            instance: format!("{instance:016x}"),
            created_unix_ms,
        }
    }

    /// The manifest in `dir`, `None` if there is none.
    pub(crate) fn read(kind: &Kind, dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = Self::path(kind, dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&format!("cannot read {}", path.display()), e)),
        };
        Self::parse(kind, &text).map(Some).map_err(|e| match e {
            ParseError::UnknownFormat(found) => StoreError::UnknownVersion {
                what: path.display().to_string(),
                found: found.to_string(),
                supported: FORMAT.to_string(),
                advice: "it was written by a newer version: run that version on this directory"
                    .into(),
            },
            ParseError::Malformed(e) => StoreError::Corrupt(format!(
                "{}: cannot be parsed ({e}); if {} beside it is intact, delete the manifest and \
                 it is written again at the next start",
                path.display(),
                kind.database
            )),
        })
    }

    /// Reads the `key = value` lines (a TOML subset; `#` starts a comment). A `format` other
    /// than [`FORMAT`] is refused before any other line is judged: a later format may use keys
    /// this version does not know.
    pub(crate) fn parse(kind: &Kind, text: &str) -> Result<Self, ParseError> {
        for line in text.lines().map(str::trim) {
            if let Some(("format", value)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
            {
                match value.parse::<u64>() {
                    Ok(FORMAT) => {}
                    Ok(other) => return Err(ParseError::UnknownFormat(other)),
                    Err(e) => return Err(format!("format: {e}").into()),
                }
            }
        }
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
            match (key.trim(), kind.engine) {
                ("engine", Some(engine)) => {
                    if value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) != Some(engine) {
                        return Err(format!("engine {} is not {engine}", excerpt(value)).into());
                    }
                }
                ("instance", _) => {
                    let v = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or_else(|| format!("instance is not a string: {}", excerpt(value)))?;
                    instance = Some(v.to_owned());
                }
                ("created_unix_ms", _) => {
                    created = Some(
                        value
                            .parse::<u64>()
                            .map_err(|e| format!("created_unix_ms: {e}"))?,
                    );
                }
                ("format", _) => {}
                (other, _) => return Err(format!("unknown key {}", excerpt(other)).into()),
            }
        }
        match (instance, created) {
            (Some(instance), Some(created_unix_ms)) => Ok(Manifest {
                instance,
                created_unix_ms,
            }),
            _ => Err(ParseError::Malformed(
                "instance or created_unix_ms missing".into(),
            )),
        }
    }

    /// Writes the manifest atomically and durably (temporary file, fsync, rename, fsync of the
    /// directory).
    pub(crate) fn write(&self, kind: &Kind, dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(kind, dir);
        let tmp = dir.join(format!("{}.tmp", kind.file));
        let text = self.render(kind);
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

    /// The manifest's text.
    pub(crate) fn render(&self, kind: &Kind) -> String {
        let engine = kind
            .engine
            .map(|e| format!("engine = \"{e}\"\n"))
            .unwrap_or_default();
        format!(
            "{}{engine}instance = \"{}\"\ncreated_unix_ms = {}\n",
            kind.header, self.instance, self.created_unix_ms
        )
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

    const TEST: Kind = Kind {
        file: "TEST-MANIFEST",
        engine: Some("fjall"),
        database: "the database",
        header: "# test\n",
    };
    const PLAIN: Kind = Kind {
        file: "MANIFEST",
        engine: None,
        database: "dynamo.redb",
        header: "",
    };

    #[test]
    fn written_manifest_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [&TEST, &PLAIN] {
            let m = Manifest::of(0xabc, 42);
            m.write(kind, dir.path()).unwrap();
            assert_eq!(Manifest::read(kind, dir.path()).unwrap(), Some(m));
        }
    }

    #[test]
    fn another_engine_or_an_unknown_key_is_refused() {
        let other = "engine = \"redb\"\ninstance = \"1\"\ncreated_unix_ms = 1";
        assert!(Manifest::parse(&TEST, other).is_err());
        // A store without an engine line does not know the key.
        assert!(Manifest::parse(&PLAIN, other).is_err());
        assert!(Manifest::parse(&PLAIN, "instance = \"1\"\ncreated_unix_ms = 1").is_ok());
    }

    #[test]
    fn format_1_reads_and_an_unknown_format_is_refused_as_such() {
        let v1 = "format = 1\ninstance = \"0000000000000001\"\ncreated_unix_ms = 1";
        assert_eq!(Manifest::parse(&PLAIN, v1), Ok(Manifest::of(1, 1)));
        // A later format may add keys: its version is what the refusal names.
        let v2 = "instance = \"1\"\ncreated_unix_ms = 1\nsomething_new = 3\nformat = 2";
        assert_eq!(
            Manifest::parse(&PLAIN, v2),
            Err(ParseError::UnknownFormat(2))
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PLAIN.file), v2).unwrap();
        let err = Manifest::read(&PLAIN, dir.path()).unwrap_err();
        assert!(
            matches!(&err, StoreError::UnknownVersion { found, .. } if found == "2"),
            "{err:?}"
        );
    }
}
