//! The `dynamo` binary: SIGKILL and restart.
