//! Nodes stopped abruptly while writes go on, restarted from their data directories.
