//! The fjall store's manifest: written beside the engine's folder at the first open, it says
//! that the directory holds a database, and which instance (see the [store docs](super) and
//! [`crate::manifest`], shared with the redb store).

/// The manifest's file name inside the data directory.
pub const MANIFEST_FILE: &str = "FJALL-MANIFEST";

/// The fjall store's manifest: an `engine = "fjall"` line, then the instance.
pub(crate) const KIND: crate::manifest::Kind = crate::manifest::Kind {
    file: MANIFEST_FILE,
    engine: Some("fjall"),
    database: "the database",
    header: "# Written when the fjall database beside it was created. While this file exists, a \
             node refuses to start\n# on a missing, empty or different database, so that lost \
             data is never mistaken for a new node.\n# To rebuild the node from its replicas, \
             remove the whole data directory.\n",
};
